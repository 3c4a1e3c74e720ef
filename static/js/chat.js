// Client behaviour for the chat page: optimistic send with a client_id, retry of failed
// sends, the composer keys, auto-scroll and copy buttons. It only listens to htmx events:
// our CSP allows no inline handlers and no eval.
(function () {
  "use strict";

  const MAX_CHARS = 10000;
  const NEAR_BOTTOM_PX = 96;

  function transcript() { return document.getElementById("transcript"); }
  function composer() { return document.getElementById("composer"); }

  // ---- auto-scroll: follow new text unless the reader scrolled up --------------------
  let following = true;
  function scroller() { return document.scrollingElement || document.documentElement; }
  function nearBottom() {
    const el = scroller();
    return el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
  }
  function scrollToLatest() {
    const el = scroller();
    el.scrollTop = el.scrollHeight;
    following = true;
    const jump = document.getElementById("jump-latest");
    if (jump) jump.hidden = true;
  }
  function contentGrew() {
    if (!transcript()) return;
    if (following) { scrollToLatest(); return; }
    const jump = document.getElementById("jump-latest");
    if (jump) jump.hidden = false;
  }
  window.addEventListener("scroll", function () {
    following = nearBottom();
    const jump = document.getElementById("jump-latest");
    if (jump && following) jump.hidden = true;
  }, { passive: true });

  // ---- composer --------------------------------------------------------------------
  function syncSendButton(form) {
    const box = form.querySelector("textarea");
    const button = form.querySelector("button[type=submit]");
    if (box && button) button.disabled = box.value.trim().length === 0;
    if (box) {
      box.style.height = "auto";
      box.style.height = Math.min(box.scrollHeight, 240) + "px";
    }
  }
  function showComposerError(text) {
    const slot = document.getElementById("composer-error");
    if (slot) slot.textContent = text;
  }

  document.addEventListener("keydown", function (evt) {
    const box = evt.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.closest("#composer")) return;
    if (evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      if (box.value.trim()) box.form.requestSubmit();
    }
  });
  document.addEventListener("input", function (evt) {
    const form = evt.target.closest && evt.target.closest("#composer");
    if (form) { syncSendButton(form); showComposerError(""); }
  });

  // ---- optimistic send -------------------------------------------------------------
  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (c) {
      return (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16);
    });
  }

  function pendingBubble(clientId, content) {
    const template = document.getElementById("pending-template");
    const bubble = template.content.firstElementChild.cloneNode(true);
    bubble.dataset.pendingId = clientId;
    bubble.dataset.content = content;
    bubble.querySelector(".msg-body").textContent = content;
    const empty = document.getElementById("transcript-empty");
    if (empty) empty.remove();
    transcript().appendChild(bubble);
    scrollToLatest();
    return bubble;
  }

  function findPending(clientId) {
    return document.querySelector('[data-pending-id="' + clientId + '"]');
  }

  function markFailed(bubble, reason) {
    bubble.classList.remove("status-pending");
    bubble.classList.add("status-failed");
    bubble.removeAttribute("aria-busy");
    bubble.querySelector(".state").textContent = "Not sent";
    bubble.querySelector(".failure").textContent = reason;
    bubble.querySelector(".msg-actions").hidden = false;
    bubble.querySelector(".retry-send").focus();
  }

  function failureReason(xhr) {
    if (!xhr || xhr.status === 0) return "You seem to be offline.";
    if (xhr.status === 429) {
      const wait = parseInt(xhr.getResponseHeader("Retry-After") || "", 10);
      const text = xhr.responseText || "Too many messages.";
      return wait ? text + " (Retry after " + wait + " s.)" : text;
    }
    if (xhr.status >= 500) return "The server had a problem (" + xhr.status + ").";
    return xhr.responseText || "Sending failed (" + xhr.status + ").";
  }

  document.body.addEventListener("htmx:configRequest", function (evt) {
    const form = evt.detail.elt;
    if (!form || form.id !== "composer") return;
    const content = String(evt.detail.parameters.get ? evt.detail.parameters.get("content") : evt.detail.parameters.content || "").trim();
    if (!content) { evt.preventDefault(); showComposerError("Type a message first."); return; }
    if (content.length > MAX_CHARS) {
      evt.preventDefault();
      showComposerError("Messages can be at most " + MAX_CHARS + " characters (this one has " + content.length + ").");
      return;
    }
    const clientId = newClientId();
    if (evt.detail.parameters.set) evt.detail.parameters.set("client_id", clientId);
    else evt.detail.parameters.client_id = clientId;
    evt.detail.headers["X-Client-Id"] = clientId;
    pendingBubble(clientId, content);
    form.querySelector("textarea").value = "";
    syncSendButton(form);
    showComposerError("");
  });

  function requestClientId(evt) {
    const config = evt.detail.requestConfig;
    return config && config.headers ? config.headers["X-Client-Id"] : null;
  }

  document.body.addEventListener("htmx:beforeSwap", function (evt) {
    const clientId = requestClientId(evt);
    if (!clientId) return;
    const bubble = findPending(clientId);
    const status = evt.detail.xhr.status;
    if (status >= 200 && status < 300 && bubble) bubble.remove();
    if (status === 422 && bubble) bubble.remove(); // the composer comes back with the text
  });

  document.body.addEventListener("htmx:afterRequest", function (evt) {
    const clientId = requestClientId(evt);
    if (!clientId || evt.detail.successful) return;
    const status = evt.detail.xhr ? evt.detail.xhr.status : 0;
    if (status === 422) return;
    const bubble = findPending(clientId);
    if (bubble) markFailed(bubble, failureReason(evt.detail.xhr));
  });

  // A retry resends the same client_id: the server answers with the first send's messages.
  async function retrySend(bubble) {
    const form = composer();
    const url = transcript().dataset.sendUrl;
    const token = form.querySelector("[name=csrfmiddlewaretoken]").value;
    const body = new URLSearchParams({ content: bubble.dataset.content, client_id: bubble.dataset.pendingId });
    bubble.classList.remove("status-failed");
    bubble.classList.add("status-pending");
    bubble.querySelector(".state").textContent = "Sending…";
    bubble.querySelector(".msg-actions").hidden = true;
    let response;
    try {
      response = await fetch(url, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "X-CSRFToken": token, "HX-Request": "true" },
      });
    } catch (err) {
      markFailed(bubble, "You seem to be offline.");
      return;
    }
    const text = await response.text();
    if (!response.ok) {
      markFailed(bubble, failureReason({
        status: response.status, responseText: text,
        getResponseHeader: function (name) { return response.headers.get(name); },
      }));
      return;
    }
    bubble.remove();
    htmx.swap(transcript(), text, { swapStyle: "beforeend" });
    scrollToLatest();
  }

  document.addEventListener("click", function (evt) {
    const target = evt.target;
    if (!(target instanceof Element)) return;
    const bubble = target.closest("[data-pending-id]");
    if (bubble && target.closest(".retry-send")) { retrySend(bubble); return; }
    if (bubble && target.closest(".discard-send")) { bubble.remove(); focusComposer(); return; }
    if (target.closest("#jump-latest")) { scrollToLatest(); return; }
    const copy = target.closest(".copy-code");
    if (copy) {
      const code = copy.parentElement.querySelector("code");
      navigator.clipboard.writeText(code ? code.innerText : "").then(function () {
        copy.textContent = "Copied";
        setTimeout(function () { copy.textContent = "Copy"; }, 1500);
      }, function () { copy.textContent = "Copy failed"; });
    }
  });

  function focusComposer() {
    const box = document.querySelector("#composer textarea");
    if (box) box.focus();
  }

  // ---- streaming -------------------------------------------------------------------
  // EventSource fires "error" for network failures too: those carry no data, never swap them.
  document.body.addEventListener("htmx:sseBeforeMessage", function (evt) {
    if (evt.detail.data === undefined || evt.detail.data === null) evt.preventDefault();
  });
  document.body.addEventListener("htmx:sseMessage", contentGrew);

  // ---- copy buttons on code blocks, and initial state ------------------------------
  function enhance(root) {
    root.querySelectorAll(".markdown pre").forEach(function (pre) {
      if (pre.querySelector(".copy-code")) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "copy-code btn btn-small";
      button.textContent = "Copy";
      pre.appendChild(button);
    });
    const form = root.querySelector ? root.querySelector("#composer") : null;
    if (form) syncSendButton(form);
  }
  htmx.onLoad(function (elt) {
    enhance(elt);
    if (elt.classList && elt.classList.contains("msg")) contentGrew();
  });
  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    if (transcript()) scrollToLatest();
  });
})();
