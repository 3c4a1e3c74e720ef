// The conversation list is a drawer behind the ☰ button on a phone-sized screen: the button
// opens and closes it, a click outside or Esc closes it.
(function () {
  "use strict";

  function sidebarToggle() { return document.getElementById("sidebar-toggle"); }
  function setSidebar(open, focus) {
    const toggle = sidebarToggle();
    const sidebar = document.getElementById("sidebar");
    if (!toggle || !sidebar) return;
    toggle.setAttribute("aria-expanded", String(open));
    sidebar.classList.toggle("open", open);
    if (open && focus) {
      const first = sidebar.querySelector("[aria-current=page], a, button");
      if (first) first.focus();
    } else if (!open && focus) {
      toggle.focus();
    }
  }
  document.addEventListener("click", function (evt) {
    const toggle = sidebarToggle();
    if (!toggle || !(evt.target instanceof Element)) return;
    if (evt.target.closest("#sidebar-toggle")) {
      setSidebar(toggle.getAttribute("aria-expanded") !== "true", true);
    } else if (toggle.getAttribute("aria-expanded") === "true" && !evt.target.closest("#sidebar")) {
      setSidebar(false, false);
    }
  });
  document.addEventListener("keydown", function (evt) {
    const toggle = sidebarToggle();
    if (evt.key === "Escape" && toggle && toggle.getAttribute("aria-expanded") === "true") {
      setSidebar(false, true);
    }
  });
})();
