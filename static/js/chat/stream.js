// A streaming answer's SSE events: an error without data is no answer to swap, and a
// dropped stream shows that it is reconnecting (it resumes where it was by itself).
(function () {
  "use strict";

  // EventSource fires "error" for network failures too: those carry no data, never swap them.
  Chat.on("htmx:sseBeforeMessage", "stream.noData", function (evt) {
    if (evt.detail.data === undefined || evt.detail.data === null) evt.preventDefault();
  });
  Chat.on("htmx:sseError", "stream.reconnecting", function (evt) {
    const msg = evt.target.closest && evt.target.closest(".msg");
    if (msg) msg.classList.add("is-reconnecting");
  });
  Chat.on("htmx:sseOpen", "stream.reconnected", function (evt) {
    const msg = evt.target.closest && evt.target.closest(".msg");
    if (msg) msg.classList.remove("is-reconnecting");
  });
})();
