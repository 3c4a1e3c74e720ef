// Answers that a retry or regenerate replaced are labelled "Replaced by a later answer".
// They stay in the history, but the model only sees the latest answer to a question: say
// which is which. Pages, "Load earlier", retries and other tabs all add answers, so the
// marks are worked out from the page after every swap.
(function () {
  "use strict";

  function markReplacedAnswers() {
    const latest = {};
    document.querySelectorAll("#transcript .msg-assistant[data-reply-to]").forEach(function (msg) {
      const earlier = latest[msg.dataset.replyTo];
      if (earlier) markReplaced(earlier, true);
      latest[msg.dataset.replyTo] = msg;
      markReplaced(msg, false);
    });
  }
  function markReplaced(msg, replaced) {
    msg.classList.toggle("is-replaced", replaced);
    const label = msg.querySelector(".msg-meta .replaced");
    if (replaced && !label) {
      const note = document.createElement("span");
      note.className = "state replaced";
      note.textContent = "Replaced by a later answer";
      msg.querySelector(".msg-meta").appendChild(note);
    } else if (!replaced && label) {
      label.remove();
    }
  }
  Chat.on("htmx:load", "replaced.mark", markReplacedAnswers);
  Chat.on("DOMContentLoaded", "replaced.mark", markReplacedAnswers);
})();
