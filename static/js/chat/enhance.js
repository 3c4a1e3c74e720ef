// Copy buttons on code blocks: added to the page and to every piece htmx swaps in.
(function () {
  "use strict";

  function addCopyButtons(root) {
    root.querySelectorAll(".markdown pre").forEach(function (pre) {
      if (pre.querySelector(".copy-code")) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "copy-code btn btn-small";
      button.textContent = "Copy";
      pre.appendChild(button);
    });
  }
  Chat.on("htmx:load", "enhance.copyButtons", function (evt) { addCopyButtons(evt.detail.elt); });
  Chat.on("DOMContentLoaded", "enhance.copyButtons", function () { addCopyButtons(document); });

  document.addEventListener("click", function (evt) {
    const copy = evt.target instanceof Element && evt.target.closest(".copy-code");
    if (!copy) return;
    const code = copy.parentElement.querySelector("code");
    navigator.clipboard.writeText(code ? code.innerText : "").then(function () {
      copy.textContent = "Copied";
      setTimeout(function () { copy.textContent = "Copy"; }, 1500);
    }, function () { copy.textContent = "Copy failed"; });
  });
})();
