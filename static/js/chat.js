// Client behaviour for the chat page: optimistic send with a client_id, retry of failed
// sends, the composer keys, auto-scroll, copy buttons, focus after each action, relative
// times and the phone-sized sidebar drawer. It only listens to htmx and DOM events: our CSP
// allows no inline handlers and no eval.
(function () {
  "use strict";

  // The server's limit, from the textarea's maxlength (one number, in the form).
  function maxChars(box) { return parseInt(box.getAttribute("maxlength") || "10000", 10); }
  const NEAR_BOTTOM_PX = 96;

  function transcript() { return document.getElementById("transcript"); }
  function composer() { return document.getElementById("composer"); }

  // ---- auto-scroll: follow new text unless the reader scrolled up --------------------
  let following = true;
  let autoTop = 0;  // where our last scroll to the latest text put the page
  function scroller() { return document.scrollingElement || document.documentElement; }
  function nearBottom() {
    const el = scroller();
    return el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
  }
  function scrollToLatest() {
    const el = scroller();
    el.scrollTop = el.scrollHeight;
    autoTop = el.scrollTop;
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
    // Our own scroll's event comes a frame later, when more text may have arrived: only
    // the reader scrolling up from where we put the page stops the following.
    if (following && scroller().scrollTop >= autoTop - 1) return;
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
    const slot = document.querySelector("#composer .composer-error");
    if (slot) slot.textContent = text;
  }

  // Esc in the rename or delete form goes back to the title, as its Cancel link does.
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || !(evt.target instanceof Element)) return;
    const form = evt.target.closest(".rename-form, .delete-form");
    const cancel = form && form.querySelector("a.cancel");
    if (cancel) { evt.preventDefault(); cancel.click(); }
  });

  document.addEventListener("keydown", function (evt) {
    const box = evt.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.closest("#composer")) return;
    if (evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      if (box.value.trim()) box.form.requestSubmit();
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
    const limit = maxChars(box);
    if (box.value.length - (box.selectionEnd - box.selectionStart) + pasted.length <= limit) return;
    setTimeout(function () { // after the input event, which clears the message
      showComposerError("The pasted text was cut to " + limit.toLocaleString("en") +
        " characters, the most a message can have.");
    }, 0);
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
    // The failure is announced (role=alert); whoever is typing keeps typing.
    const active = document.activeElement;
    if (!active || active === document.body) bubble.querySelector(".retry-send").focus();
  }

  // The server's reason, when it sent one as text (our refusals are text/plain); never the
  // HTML of an error page.
  function serverText(xhr) {
    const type = xhr.getResponseHeader("Content-Type") || "";
    return type.indexOf("text/plain") === 0 ? xhr.responseText : "";
  }

  function failureReason(xhr) {
    if (!xhr || xhr.status === 0) return "You seem to be offline.";
    if (xhr.status === 429) {
      const wait = parseInt(xhr.getResponseHeader("Retry-After") || "", 10);
      const text = serverText(xhr) || "Too many messages.";
      return wait && !/\d+ s\b/.test(text) ? text + " (Try again in " + wait + " s.)" : text;
    }
    if (xhr.status >= 500) return "The server had a problem (" + xhr.status + ").";
    return serverText(xhr) || "Sending failed (" + xhr.status + ").";
  }

  // Signing in again (in another tab) gives the session a new CSRF token: send the cookie's
  // current one, not the one this page was rendered with, so a retry then goes through.
  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/); // CSRF_COOKIE_NAME
    return match ? decodeURIComponent(match[1]) : null;
  }
  document.body.addEventListener("htmx:configRequest", function (evt) {
    const token = csrfToken();
    if (token) evt.detail.headers["X-CSRFToken"] = token;
  });
  // A form's own field wins over the header (Django reads it first): refresh it as the form
  // is submitted, before htmx (or the browser, for a plain form like Log out) reads it.
  document.addEventListener("submit", function (evt) {
    const token = csrfToken();
    const field = evt.target instanceof HTMLFormElement && evt.target.elements.namedItem("csrfmiddlewaretoken");
    if (token && field instanceof HTMLInputElement) field.value = token;
  }, true);

  document.body.addEventListener("htmx:configRequest", function (evt) {
    const form = evt.detail.elt;
    if (!form || form.id !== "composer") return;
    const content = String(evt.detail.parameters.get ? evt.detail.parameters.get("content") : evt.detail.parameters.content || "").trim();
    if (!content) { evt.preventDefault(); showComposerError("Type a message first."); return; }
    const limit = maxChars(form.querySelector("textarea"));
    if (content.length > limit) {
      evt.preventDefault();
      showComposerError("Messages can be at most " + limit + " characters (this one has " + content.length + ").");
      return;
    }
    const clientId = newClientId();
    if (evt.detail.parameters.set) evt.detail.parameters.set("client_id", clientId);
    else evt.detail.parameters.client_id = clientId;
    evt.detail.headers["X-Client-Id"] = clientId;
    pendingBubble(clientId, content);
    const box = form.querySelector("textarea");
    box.value = "";
    box.focus(); // after a click on Send, keep typing
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
    // hx-disabled-elt re-enables Send when the request ends, even with an empty box.
    const form = composer();
    if (form && evt.detail.elt === form) syncSendButton(form);
    const clientId = requestClientId(evt);
    if (!clientId || evt.detail.successful) return;
    const status = evt.detail.xhr ? evt.detail.xhr.status : 0;
    if (status === 422) return;
    const bubble = findPending(clientId);
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
    focusComposer();
    htmx.ajax("POST", transcript().dataset.sendUrl, {
      target: "#transcript", swap: "beforeend",
      values: { content: bubble.dataset.content, client_id: clientId },
      headers: { "X-Client-Id": clientId },
    }).then(function () {
      if (!findPending(clientId)) scrollToLatest();
    }, function () { /* a network failure: htmx:afterRequest marked the bubble failed */ });
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

  // ---- what failed outside the composer (stop, retry, rename, a new chat...) ---------
  // A send's own bubble says why it failed; anything else says so here, never silently.
  function showNotice(text, signIn) {
    const notice = document.getElementById("notice");
    if (!notice) return;
    const message = document.createElement("span");
    message.textContent = text;
    notice.replaceChildren(message);
    if (signIn) { // a new tab: this page keeps its unsent messages to retry afterwards
      const link = document.createElement("a");
      link.href = notice.dataset.loginUrl;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = "Sign in (opens a new tab)";
      notice.appendChild(link);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "btn btn-small notice-close";
    close.textContent = "Dismiss";
    notice.appendChild(close);
    notice.hidden = false;
  }
  function hideNotice() {
    const notice = document.getElementById("notice");
    if (notice) notice.hidden = true;
  }
  function actionFailure(xhr) {
    if (!xhr || xhr.status === 0) return "Could not reach the server. Check your connection, then try again.";
    if (serverText(xhr)) return serverText(xhr);
    if (xhr.status >= 500) return "The server had a problem (" + xhr.status + "). Try again.";
    return "That did not work (" + xhr.status + "). Reload the page, then try again.";
  }
  function requestFailed(evt) {
    const xhr = evt.detail.xhr;
    if (xhr && xhr.status === 401) { showNotice(serverText(xhr) || "You are signed out.", true); return; }
    if (!requestClientId(evt)) showNotice(actionFailure(xhr), false);
  }
  document.body.addEventListener("htmx:responseError", requestFailed);
  document.body.addEventListener("htmx:sendError", requestFailed);
  document.body.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.successful) hideNotice();
  });
  // sync.js: this session was signed out (here or in another tab) and its socket closed.
  document.body.addEventListener("chat:signedOut", function () {
    showNotice("You were signed out. Messages you send now are kept here to retry.", true);
  });
  document.addEventListener("click", function (evt) {
    if (evt.target instanceof Element && evt.target.closest(".notice-close")) hideNotice();
  });

  // ---- "Load earlier messages" keeps the message being read where it was --------------
  let keptFromBottom = null;
  document.body.addEventListener("htmx:beforeSwap", function (evt) {
    const target = evt.detail.target;
    // Only for a swap that happens: a failed request has no afterSwap to use it up, and the
    // next swap (a message sent) would jump to the place kept here.
    if (evt.detail.shouldSwap && target && target.classList && target.classList.contains("load-earlier")) {
      keptFromBottom = scroller().scrollHeight - scroller().scrollTop;
    }
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    if (keptFromBottom === null) return;
    scroller().scrollTop = scroller().scrollHeight - keptFromBottom;
    keptFromBottom = null;
  });

  // ---- focus after a swap removed the focused element --------------------------------
  // A finished answer replaces its bubble (and the Stop button in it); a saved title
  // replaces the rename form. Focus goes where the next action is, never to <body>.
  let swapTarget = null; // the element a swap replaces while it holds the focus
  function noteFocus(target) {
    const active = document.activeElement;
    if (target && active && active !== document.body && target.contains(active)) swapTarget = target;
  }
  function restoreFocus() {
    const target = swapTarget;
    if (!target) return;
    if (target.isConnected) { // not swapped yet (an out-of-band part came first), or never
      if (!target.contains(document.activeElement)) swapTarget = null;
      return;
    }
    swapTarget = null;
    const active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return;
    const title = document.getElementById("chat-title");
    const next = target.id === "chat-title" && title ? title.querySelector("a, button, input") : null;
    if (next) next.focus(); else focusComposer();
  }
  document.body.addEventListener("htmx:beforeSwap", function (evt) {
    // The live-sync socket can replace an element before its own response arrives (the new
    // title over the rename form that asked for it): nothing is left to update.
    if (evt.detail.target && !evt.detail.target.isConnected) { evt.detail.shouldSwap = false; return; }
    noteFocus(evt.detail.target);
  });
  document.body.addEventListener("htmx:afterSettle", restoreFocus);
  // The live-sync socket swaps out of band (e.g. the new title over this tab's rename form).
  document.body.addEventListener("htmx:oobBeforeSwap", function (evt) { noteFocus(evt.detail.target); });
  document.body.addEventListener("htmx:oobAfterSwap", restoreFocus);

  // ---- streaming -------------------------------------------------------------------
  // EventSource fires "error" for network failures too: those carry no data, never swap them.
  document.body.addEventListener("htmx:sseBeforeMessage", function (evt) {
    if (evt.detail.data === undefined || evt.detail.data === null) { evt.preventDefault(); return; }
    noteFocus(evt.target.closest(".msg"));
  });
  document.body.addEventListener("htmx:sseMessage", function () {
    restoreFocus();
    contentGrew();
  });
  // A dropped stream reconnects by itself (and resumes where it was): say so meanwhile.
  document.body.addEventListener("htmx:sseError", function (evt) {
    const msg = evt.target.closest && evt.target.closest(".msg");
    if (msg) msg.classList.add("is-reconnecting");
  });
  document.body.addEventListener("htmx:sseOpen", function (evt) {
    const msg = evt.target.closest && evt.target.closest(".msg");
    if (msg) msg.classList.remove("is-reconnecting");
  });

  // ---- relative times ("just now", "5 min ago"), the absolute time in the tooltip -----
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
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      el.textContent = relativeTime(date);
      if (!el.title) el.title = date.toLocaleString();
    });
  }
  setInterval(function () { updateTimes(document); }, 30000);

  // ---- the sidebar is a drawer on a phone-sized screen -------------------------------
  function sidebarToggle() { return document.getElementById("sidebar-toggle"); }
  function setSidebar(open, focus) {
    const toggle = sidebarToggle();
    const sidebar = document.getElementById("sidebar");
    if (!toggle || !sidebar) return;
    toggle.setAttribute("aria-expanded", String(open));
    sidebar.classList.toggle("open", open);
    if (open && focus) {
      const first = sidebar.querySelector("[aria-current=page], a, button");
      if (first) first.focus();
    } else if (!open && focus) {
      toggle.focus();
    }
  }
  document.addEventListener("click", function (evt) {
    const toggle = sidebarToggle();
    if (!toggle || !(evt.target instanceof Element)) return;
    if (evt.target.closest("#sidebar-toggle")) {
      setSidebar(toggle.getAttribute("aria-expanded") !== "true", true);
    } else if (toggle.getAttribute("aria-expanded") === "true" && !evt.target.closest("#sidebar")) {
      setSidebar(false, false);
    }
  });
  document.addEventListener("keydown", function (evt) {
    const toggle = sidebarToggle();
    if (evt.key === "Escape" && toggle && toggle.getAttribute("aria-expanded") === "true") {
      setSidebar(false, true);
    }
  });

  // ---- answers that a retry or regenerate replaced ------------------------------------
  // They stay in the history, but the model only sees the latest answer to a question:
  // say which is which. Pages, "Load earlier", retries and other tabs all add answers, so
  // the marks are worked out from the page after every swap.
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
    if (root.querySelectorAll) updateTimes(root);
  }
  htmx.onLoad(function (elt) {
    enhance(elt);
    markReplacedAnswers();
    if (elt.classList && elt.classList.contains("msg")) contentGrew();
  });
  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    markReplacedAnswers();
    if (transcript()) scrollToLatest();
  });
})();
