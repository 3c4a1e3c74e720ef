// Sending: the user's bubble shows at once (pending, with a fresh client_id), the response
// replaces it, and a send that failed says why and offers Retry (same client_id) or Discard.
(function () {
  "use strict";

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (c) {
      return (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16);
    });
  }

  // The files of each send not yet confirmed, by client_id: [{id, name, chip}].
  const sentFiles = {};

  function pendingBubble(clientId, content) {
    const template = document.getElementById("pending-template");
    const bubble = template.content.firstElementChild.cloneNode(true);
    bubble.dataset.pendingId = clientId;
    bubble.dataset.content = content;
    bubble.querySelector(".msg-body").textContent = content;
    const empty = document.getElementById("transcript-empty");
    if (empty) empty.remove();
    Chat.transcript().appendChild(bubble);
    Chat.scrollToLatest();
    return bubble;
  }

  function markFailed(bubble, reason) {
    bubble.classList.remove("status-pending");
    bubble.classList.add("status-failed");
    bubble.removeAttribute("aria-busy");
    bubble.querySelector(".state").textContent = "Not sent";
    bubble.querySelector(".failure").textContent = reason;
    bubble.querySelector(".msg-actions").hidden = false;
    // The failure is announced (role=alert); whoever is typing keeps typing.
    const active = document.activeElement;
    if (!active || active === document.body) bubble.querySelector(".retry-send").focus();
  }

  // A quota used up (429, X-Refusal: quota): the text says when it resets, hours away.
  function overQuota(xhr) {
    return !!xhr && xhr.status === 429 && xhr.getResponseHeader("X-Refusal") === "quota";
  }

  function failureReason(xhr) {
    if (!xhr || xhr.status === 0) return "You seem to be offline.";
    if (overQuota(xhr)) return Chat.serverText(xhr) || "You have used your token quota.";
    if (xhr.status === 429) {
      const wait = parseInt(xhr.getResponseHeader("Retry-After") || "", 10);
      const text = Chat.serverText(xhr) || "Too many messages.";
      return wait && !/\d+ s\b/.test(text) ? text + " (Try again in " + wait + " s.)" : text;
    }
    if (xhr.status >= 500) return "The server had a problem (" + xhr.status + ").";
    return Chat.serverText(xhr) || "Sending failed (" + xhr.status + ").";
  }

  Chat.on("htmx:configRequest", "sending.pending", function (evt) {
    const form = evt.detail.elt;
    if (!form || form.id !== "composer") return;
    const content = String(evt.detail.parameters.get ? evt.detail.parameters.get("content") : evt.detail.parameters.content || "").trim();
    const withFiles = Chat.hasAttachments ? Chat.hasAttachments() : false;
    if (!content && !withFiles) { evt.preventDefault(); Chat.showComposerError("Type a message first."); return; }
    const limit = Chat.maxChars(form.querySelector("textarea"));
    if (content.length > limit) {
      evt.preventDefault();
      Chat.showComposerError("Messages can be at most " + limit + " characters (this one has " + content.length + ").");
      return;
    }
    if (Chat.uploadsPending && Chat.uploadsPending()) {
      evt.preventDefault();
      Chat.showComposerError("Wait for the files to finish uploading, or remove them.");
      return;
    }
    const clientId = newClientId();
    if (evt.detail.parameters.set) evt.detail.parameters.set("client_id", clientId);
    else evt.detail.parameters.client_id = clientId;
    evt.detail.headers["X-Client-Id"] = clientId;
    const bubble = pendingBubble(clientId, content);
    // The files go with the send (their ids are the form's `attachment` inputs); the chips
    // leave the composer with it, kept for a Retry or given back if it is refused.
    const files = Chat.takeAttachments ? Chat.takeAttachments() : [];
    if (files.length) {
      sentFiles[clientId] = files;
      const names = document.createElement("ul");
      names.className = "msg-files";
      files.forEach(function (file) {
        const item = document.createElement("li");
        item.className = "file-chip";
        item.textContent = file.name;
        names.appendChild(item);
      });
      bubble.querySelector(".msg-body").after(names);
    }
    const box = form.querySelector("textarea");
    box.value = "";
    box.focus(); // after a click on Send, keep typing
    Chat.syncSendButton(form);
    Chat.showComposerError("");
  });

  // Offline (the browser knows it): a send is not even tried. htmx would log its failure
  // with console.error, unasked and before any handler can see it; the bubble says why.
  Chat.on("htmx:configRequest", "sending.offline", function (evt) {
    if (navigator.onLine !== false || evt.defaultPrevented) return;
    const clientId = evt.detail.headers["X-Client-Id"];
    const bubble = clientId && Chat.findPending(clientId);
    if (!bubble) return;
    evt.preventDefault();
    markFailed(bubble, "You're offline. Retry once you're back.");
    const form = Chat.composer();
    if (form) Chat.syncSendButton(form);
  });

  Chat.on("htmx:beforeSwap", "sending.confirm", function (evt) {
    const clientId = Chat.requestClientId(evt);
    if (!clientId) return;
    const bubble = Chat.findPending(clientId);
    const status = evt.detail.xhr.status;
    if (status >= 200 && status < 300) delete sentFiles[clientId];
    if (status >= 200 && status < 300 && bubble) bubble.remove();
    if (status === 422) {
      if (bubble) bubble.remove(); // the composer comes back with the text
      // ... and its files: their chips go in once the new composer is swapped in.
      const files = sentFiles[clientId];
      delete sentFiles[clientId];
      if (files && Chat.restoreAttachments) setTimeout(function () { Chat.restoreAttachments(files); }, 0);
    }
  });

  Chat.on("htmx:afterRequest", "sending.result", function (evt) {
    // hx-disabled-elt re-enables Send when the request ends, even with an empty box.
    const form = Chat.composer();
    if (form && evt.detail.elt === form) Chat.syncSendButton(form);
    const clientId = Chat.requestClientId(evt);
    if (!clientId || evt.detail.successful) return;
    const status = evt.detail.xhr ? evt.detail.xhr.status : 0;
    if (status === 422) return;
    const bubble = Chat.findPending(clientId);
    const refused = status === 409 || status === 400 || overQuota(evt.detail.xhr);
    if (refused && form && evt.detail.elt === form && bubble) {
      // Refused (an answer is being written; a model no longer on offer; over quota):
      // nothing was stored, so the text goes
      // back in the box (unless something new was typed there) with the reason under it.
      const box = form.querySelector("textarea");
      if (box && !box.value.trim()) box.value = bubble.dataset.content;
      if (Chat.restoreAttachments) Chat.restoreAttachments(sentFiles[clientId]);
      delete sentFiles[clientId];
      bubble.remove();
      Chat.syncSendButton(form);
      Chat.showComposerError(failureReason(evt.detail.xhr));
      return;
    }
    if (bubble) markFailed(bubble, failureReason(evt.detail.xhr));
  });

  // A retry resends the same client_id: the server answers with the first send's messages.
  // It goes through htmx (not fetch + htmx.swap) so that the same handlers see it: the
  // pending bubble is confirmed or marked failed above, and sync.js drops bubbles the live
  // socket already delivered.
  function retrySend(bubble) {
    const clientId = bubble.dataset.pendingId;
    bubble.classList.remove("status-failed");
    bubble.classList.add("status-pending");
    bubble.setAttribute("aria-busy", "true");
    bubble.querySelector(".state").textContent = "Sending…";
    bubble.querySelector(".msg-actions").hidden = true;
    Chat.focusComposer();
    htmx.ajax("POST", Chat.transcript().dataset.sendUrl, {
      target: "#transcript", swap: "beforeend",
      // The same files' ids: the server attaches them once, to the first send's message.
      values: {
        content: bubble.dataset.content, client_id: clientId,
        attachment: (sentFiles[clientId] || []).map(function (file) { return file.id; }),
      },
      headers: { "X-Client-Id": clientId },
    }).then(function () {
      if (!Chat.findPending(clientId)) Chat.scrollToLatest();
    }, function () { /* a network failure: htmx:afterRequest marked the bubble failed */ });
  }

  document.addEventListener("click", function (evt) {
    const target = evt.target;
    if (!(target instanceof Element)) return;
    const bubble = target.closest("[data-pending-id]");
    if (bubble && target.closest(".retry-send")) retrySend(bubble);
    else if (bubble && target.closest(".discard-send")) { bubble.remove(); Chat.focusComposer(); }
  });
})();
