// An answer's Report form (a <details>): Esc closes it, from its summary, box or button, and
// the focus goes back to its summary, as a menu's Esc does. What was typed stays.
(function () {
  "use strict";

  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || evt.isComposing || !(evt.target instanceof Element)) return;
    const report = evt.target.closest("details.report[open]");
    if (!report) return;
    evt.preventDefault();
    report.open = false;
    const summary = report.querySelector("summary");
    if (summary) summary.focus();
  });
})();
