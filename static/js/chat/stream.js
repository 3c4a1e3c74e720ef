// A streaming answer's SSE events: an error without data is no answer to swap, and a
// dropped stream shows that it is reconnecting (it resumes where it was by itself).
(function () {
  "use strict";

  // The EventSources htmx's SSE extension opens (its documented hook). The extension's
  // onerror logs every error event with console.error (htmx 2 logs error events before any
  // listener sees them). A dropped connection the browser retries by itself (CONNECTING)
  // is no error of the page: its bubble shows "reconnecting" instead, and the console stays
  // quiet; a stream that closed (htmx reopens it) still goes to the extension. The server's
  // own `error` event (a MessageEvent) reaches its sse-swap listener as before.
  function markReconnecting(url, down) {
    document.querySelectorAll("[sse-connect]").forEach(function (elt) {
      if (elt.getAttribute("sse-connect") === url) elt.classList.toggle("is-reconnecting", down);
    });
  }
  htmx.createEventSource = function (url) {
    const source = new EventSource(url);
    let handler = null;
    Object.defineProperty(source, "onerror", {
      configurable: true,
      get: function () { return handler; },
      set: function (fn) { handler = fn; },
    });
    source.addEventListener("error", function (evt) {
      if (evt.data !== undefined) return; // the server's `error` event
      if (source.readyState === EventSource.CONNECTING) { markReconnecting(url, true); return; }
      if (handler) handler.call(source, evt);
    });
    source.addEventListener("open", function () { markReconnecting(url, false); });
    return source;
  };

  // EventSource fires "error" for network failures too: those carry no data, never swap them.
  Chat.on("htmx:sseBeforeMessage", "stream.noData", function (evt) {
    if (evt.detail.data === undefined || evt.detail.data === null) evt.preventDefault();
  });
  // The final bubble (done, error) replaces the live one: a Thinking section the reader
  // opened stays open. The swap runs right after this handler, in the same task; the
  // microtask after it, before the page is painted.
  Chat.on("htmx:sseBeforeMessage", "stream.keepThinking", function (evt) {
    if (evt.defaultPrevented || (evt.detail.type !== "done" && evt.detail.type !== "error")) return;
    const msg = evt.target.closest && evt.target.closest(".msg");
    const section = msg && msg.querySelector("details.thinking");
    if (!section || !section.open) return;
    queueMicrotask(function () {
      const replaced = document.getElementById(section.id);
      if (replaced) replaced.open = true;
    });
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
