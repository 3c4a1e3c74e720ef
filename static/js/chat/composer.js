// The composer: Enter sends and Esc stops the streaming answer, the Send button and the
// box's height follow the text, the error line under it, and a paste cut short says so.
// Also Esc in the title's rename or delete form, and the keys of a message's edit form.
(function () {
  "use strict";

  // An answer of the shown conversation still being written (the live bubble is aria-busy;
  // its final `done`/`error` bubble is not). The server refuses a send meanwhile (409).
  function answerLive() {
    return !!document.querySelector('#transcript article.msg-assistant[aria-busy="true"]');
  }

  // Send is enabled only with text and no answer being written (the hint says why); the box
  // grows with the text, up to 240 px.
  function syncSend(form) {
    const box = form.querySelector("textarea");
    const button = form.querySelector("button[type=submit]");
    const live = answerLive();
    // Text, or files alone (attach.js), can be sent.
    const files = Chat.hasAttachments ? Chat.hasAttachments() : false;
    if (box && button) button.disabled = live || (box.value.trim().length === 0 && !files);
    const hint = form.querySelector(".composer-hint");
    if (hint) hint.hidden = !live;
  }
  function syncSendButton(form) {
    syncSend(form);
    const box = form.querySelector("textarea");
    if (box) {
      box.style.height = "auto";
      box.style.height = Math.min(box.scrollHeight, 240) + "px";
    }
  }
  function showComposerError(text) {
    const slot = document.querySelector("#composer .composer-error");
    if (slot) slot.textContent = text;
  }
  Chat.syncSendButton = syncSendButton;
  Chat.answerLive = answerLive;
  Chat.showComposerError = showComposerError;

  // Esc in the rename or delete form goes back to the title, as its Cancel link does.
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || !(evt.target instanceof Element)) return;
    const form = evt.target.closest(".rename-form, .delete-form");
    const cancel = form && form.querySelector("a.cancel");
    if (cancel) { evt.preventDefault(); cancel.click(); }
  });

  // Editing a sent message: Enter saves (Shift+Enter a new line), Esc cancels. An empty
  // edit goes to the server too, which says what is wrong in the form.
  document.addEventListener("keydown", function (evt) {
    const box = evt.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.closest(".edit-form")) return;
    if (evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      box.form.requestSubmit();
    } else if (evt.key === "Escape") {
      const cancel = box.form.querySelector("a.edit-cancel");
      if (cancel) { evt.preventDefault(); cancel.click(); }
    }
  });

  document.addEventListener("keydown", function (evt) {
    const box = evt.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.closest("#composer")) return;
    if (evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      // requestSubmit() would send past a disabled Send: not while an answer is written.
      const files = Chat.hasAttachments ? Chat.hasAttachments() : false;
      if ((box.value.trim() || files) && !answerLive()) box.form.requestSubmit();
    } else if (evt.key === "Escape") {
      // Esc in the composer stops the answer that is streaming, as in other chat apps.
      const stop = document.querySelector("#transcript .msg-actions .stop");
      if (stop) { evt.preventDefault(); stop.click(); }
    }
  });
  document.addEventListener("input", function (evt) {
    const form = evt.target.closest && evt.target.closest("#composer");
    if (form) { syncSendButton(form); showComposerError(""); }
  });
  // The box's maxlength cuts a paste that is too long without a word: say so.
  document.addEventListener("paste", function (evt) {
    const box = evt.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.closest("#composer")) return;
    const pasted = ((evt.clipboardData && evt.clipboardData.getData("text")) || "").replace(/\r\n?/g, "\n");
    const limit = Chat.maxChars(box);
    if (box.value.length - (box.selectionEnd - box.selectionStart) + pasted.length <= limit) return;
    setTimeout(function () { // after the input event, which clears the message
      showComposerError("The pasted text was cut to " + limit.toLocaleString("en") +
        " characters, the most a message can have.");
    }, 0);
  });

  // The initial state of a composer on the page or swapped in (a 422 brings it back, a new
  // chat's first send the conversation's #main, with its own transcript to watch).
  function initial(root) {
    const form = root.querySelector ? root.querySelector("#composer") : null;
    if (form) syncSendButton(form);
    if (root.id === "main") watchTranscript();
  }
  // A live answer comes and goes as a child of the transcript (a send's response, live sync,
  // its final SSE swap, a version switch), or changes its aria-busy in place; Send follows.
  // Tokens land deeper and change no aria-busy, so they wake neither observer.
  const watched = new WeakSet();
  function watchTranscript() {
    const transcript = Chat.transcript();
    if (!transcript || watched.has(transcript)) return;
    watched.add(transcript);
    const update = function () {
      const form = Chat.composer();
      if (form) syncSend(form);
    };
    new MutationObserver(update).observe(transcript, { childList: true });
    new MutationObserver(update).observe(transcript, { subtree: true, attributeFilter: ["aria-busy"] });
  }
  Chat.on("htmx:load", "composer.initial", function (evt) { initial(evt.detail.elt); });
  Chat.on("DOMContentLoaded", "composer.initial", function () { initial(document); watchTranscript(); });
})();
