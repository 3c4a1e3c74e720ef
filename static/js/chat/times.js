// Relative times ("just now", "5 min ago") on every <time datetime>, kept current; the
// absolute time in the tooltip.
(function () {
  "use strict";

  const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
  function relativeTime(date) {
    const seconds = (date.getTime() - Date.now()) / 1000;
    const abs = Math.abs(seconds);
    if (abs < 45) return "just now";
    if (abs < 45 * 60) return relativeFormat.format(Math.round(seconds / 60), "minute");
    if (abs < 22 * 3600) return relativeFormat.format(Math.round(seconds / 3600), "hour");
    if (abs < 6 * 86400) return relativeFormat.format(Math.round(seconds / 86400), "day");
    return date.toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
  }
  function updateTimes(root) {
    if (!root.querySelectorAll) return;
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      el.textContent = relativeTime(date);
      if (!el.title) el.title = date.toLocaleString();
    });
  }
  setInterval(function () { updateTimes(document); }, 30000);
  Chat.on("htmx:load", "times.update", function (evt) { updateTimes(evt.detail.elt); });
  Chat.on("DOMContentLoaded", "times.update", function () { updateTimes(document); });
})();
