// The notice at the top: a request outside the composer that failed (stop, retry, rename, a
// new chat...) says so there, never silently, and so does a sign-out (with a Sign in link).
// Also the Dismiss of the server's messages ("Signed in as...") under it.
(function () {
  "use strict";

  function showNotice(text, signIn, kind) {
    const notice = document.getElementById("notice");
    if (!notice) return;
    notice.dataset.kind = kind || "";
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
    if (Chat.serverText(xhr)) return Chat.serverText(xhr);
    if (xhr.status >= 500) return "The server had a problem (" + xhr.status + "). Try again.";
    return "That did not work (" + xhr.status + "). Reload the page, then try again.";
  }
  // A send's own bubble says why it failed (sending.js); anything else says so here.
  function requestFailed(evt) {
    const xhr = evt.detail.xhr;
    if (xhr && xhr.status === 401) { showNotice(Chat.serverText(xhr) || "You are signed out.", true); return; }
    if (!Chat.requestClientId(evt)) showNotice(actionFailure(xhr), false);
  }
  // Offline (the browser knows it): say so at once, and try no request meanwhile (htmx would
  // log each failure with console.error); back online, the notice goes.
  const OFFLINE = "You're offline. Nothing you do now reaches the server: what you send waits here, with Retry.";
  window.addEventListener("offline", function () { showNotice(OFFLINE, false, "offline"); });
  window.addEventListener("online", function () {
    const notice = document.getElementById("notice");
    if (notice && notice.dataset.kind === "offline") hideNotice();
  });
  Chat.on("htmx:configRequest", "notices.offline", function (evt) {
    if (navigator.onLine !== false || evt.defaultPrevented) return;
    evt.preventDefault();
    showNotice("Could not reach the server: you're offline. Try again once you're back.", false, "offline");
  });
  Chat.on("htmx:responseError", "notices.failed", requestFailed);
  Chat.on("htmx:sendError", "notices.failed", requestFailed);
  Chat.on("htmx:afterRequest", "notices.hide", function (evt) {
    if (evt.detail.successful) hideNotice();
  });
  // sync.js: this session was signed out (here or in another tab) and its socket closed.
  document.body.addEventListener("chat:signedOut", function () {
    showNotice("You were signed out. Messages you send now are kept here to retry.", true);
  });
  document.addEventListener("click", function (evt) {
    if (!(evt.target instanceof Element)) return;
    if (evt.target.closest(".notice-close")) hideNotice();
    // A message of the server's (base.html's flashes): gone, and the focus back to the page.
    const flash = evt.target.closest(".flash-close") && evt.target.closest(".flash");
    if (flash) {
      flash.remove();
      Chat.focusComposer();
    }
  });
})();
