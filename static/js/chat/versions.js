// The version switcher ("< 2 / 3 >"): a switch replaces the transcript, so the button that
// had the focus is gone; the focus goes to the same button of the version now shown (the
// message at the same place on the path), or to its other button at either end.
(function () {
  "use strict";

  let pending = null; // {place, which}: the button used, while its switch is on its way

  Chat.on("htmx:beforeRequest", "versions.note", function (evt) {
    const form = evt.detail.elt;
    const nav = form && form.closest && form.closest(".versions");
    if (!nav) return;
    const button = form.querySelector("button");
    const messages = Array.prototype.slice.call(document.querySelectorAll("#transcript > .msg"));
    pending = {
      place: messages.indexOf(nav.closest(".msg")),
      which: button && button.classList.contains("version-previous") ? "previous" : "next",
    };
  });

  Chat.on("htmx:afterSettle", "versions.restore", function () {
    if (!pending) return;
    const { place, which } = pending;
    pending = null;
    const message = document.querySelectorAll("#transcript > .msg")[place];
    const nav = message && message.querySelector(".versions");
    if (!nav) return;
    const other = which === "previous" ? "next" : "previous";
    const button = [which, other]
      .map(function (name) { return nav.querySelector(".version-" + name); })
      .find(function (candidate) { return candidate && !candidate.disabled; });
    if (button) button.focus();
  });
})();
