// Focus after a swap removed the focused element: a finished answer replaces its bubble
// (and the Stop button in it), a saved title the rename form. Focus goes where the next
// action is, never to <body>.
(function () {
  "use strict";

  let swapTarget = null; // the element a swap replaces while it holds the focus
  function noteFocus(target) {
    const active = document.activeElement;
    if (target && active && active !== document.body && target.contains(active)) swapTarget = target;
  }
  function restoreFocus() {
    const target = swapTarget;
    if (!target) return;
    if (target.isConnected) { // not swapped yet (an out-of-band part came first), or never
      if (target.contains(document.activeElement)) return;
      swapTarget = null;
      // Its content was replaced (an edit saved, the transcript swapped): the composer.
      if (!document.activeElement || document.activeElement === document.body) Chat.focusComposer();
      return;
    }
    swapTarget = null;
    const active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return;
    const title = document.getElementById("chat-title");
    const next = target.id === "chat-title" && title ? title.querySelector("a, button, input") : null;
    if (next) next.focus(); else Chat.focusComposer();
  }

  Chat.on("htmx:beforeSwap", "focus.note", function (evt) {
    // The live-sync socket can replace an element before its own response arrives (the new
    // title over the rename form that asked for it): nothing is left to update.
    if (evt.detail.target && !evt.detail.target.isConnected) { evt.detail.shouldSwap = false; return; }
    noteFocus(evt.detail.target);
  });
  Chat.on("htmx:afterSettle", "focus.restore", restoreFocus);
  // The live-sync socket swaps out of band (e.g. the new title over this tab's rename form).
  Chat.on("htmx:oobBeforeSwap", "focus.note", function (evt) { noteFocus(evt.detail.target); });
  Chat.on("htmx:oobAfterSwap", "focus.restore", restoreFocus);
  // A stream's final event replaces the bubble holding its Stop button.
  Chat.on("htmx:sseBeforeMessage", "focus.note", function (evt) {
    if (!evt.defaultPrevented) noteFocus(evt.target.closest(".msg"));
  });
  Chat.on("htmx:sseMessage", "focus.restore", restoreFocus);
})();
