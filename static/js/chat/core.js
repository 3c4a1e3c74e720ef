// The chat page's shared namespace (window.Chat): DOM lookups, the CSRF token, and the one
// listener per htmx event, which runs the modules' handlers in the order written below.
// The other files in static/js/chat/ are the features; each registers its handlers here.
window.Chat = (function () {
  "use strict";

  // Each event's handlers, in the order they run: "module.handler", one handler each,
  // registered by that module's file with Chat.on(event, "module.handler", fn).
  const ORDER = {
    "htmx:configRequest": [
      "csrf.header",        // every request carries the cookie's token, a refused send too
      "sending.pending",    // a send: checked, given a client_id, shown as a pending bubble
      "sending.offline",    // offline: a send is not tried, its bubble says "Not sent" at once
      "notices.offline",    // and any other request says so in the notice
    ],
    "htmx:beforeSwap": [
      "sending.confirm",    // a send's response (or its 422) replaces the pending bubble
      "scroll.keepPlace",   // "Load earlier" notes the place to keep
      "focus.note",         // a target already gone is not swapped; else note the focus
      "sync.listGrew",      // "Older conversations" opened more of the list
      "sync.dropKnown",     // messages the socket already brought leave the response
    ],
    "htmx:beforeRequest": ["versions.note"], // a switch notes which of its buttons was used
    "htmx:afterSwap": ["scroll.keepPlace"],
    "htmx:afterSettle": [
      "focus.restore",      // the focus back where the next action is
      "versions.restore",   // after a switch, on the same button of the version now shown
      "sync.listGrew",      // then the socket hears of the longer list
    ],
    "htmx:afterRequest": [
      "sending.result",     // Send enabled again; a send that failed says "Not sent"
      "notices.hide",       // a request that worked hides the notice
      "sync.reconnect",     // signed in again: the first request that worked reopens the socket
    ],
    "htmx:responseError": ["notices.failed"],
    "htmx:sendError": ["notices.failed"],
    "htmx:oobBeforeSwap": [
      "focus.note",         // note the focus before a live-sync frame replaces it
      "sync.staleList",     // a list rendered for fewer conversations than shown is refused
      "sync.title",         // so is a title over an open rename form, or the same title
      "sync.sameTranscript", // and a transcript of the messages the page already shows
      "sync.appended",      // appended messages: known ones dropped, pending ones confirmed
    ],
    "htmx:oobAfterSwap": ["focus.restore"],
    "htmx:sseBeforeMessage": [
      "stream.noData",      // an error without data (the network) is cancelled
      "stream.keepThinking", // an open Thinking section stays open in the final bubble
      "focus.note",         // else note the focus before the event's swap
    ],
    "htmx:sseMessage": [
      "focus.restore",      // the final bubble replaced the Stop button that had the focus
      "scroll.follow",      // then follow the text
    ],
    "htmx:sseError": ["stream.reconnecting"],
    "htmx:sseOpen": ["stream.reconnected"],
    "htmx:wsOpen": ["sync.announce"],
    "htmx:wsClose": ["sync.closed"],
    "htmx:wsAfterMessage": ["sync.empty"],
    // htmx.onLoad's event: the page once htmx started, then every piece it swaps in.
    // A new chat's first send swaps in the conversation's #main: the socket hears of it.
    "htmx:load": ["enhance.copyButtons", "composer.initial", "times.update", "title.follow", "scroll.follow", "sync.shown"],
    // On document, once every deferred script ran.
    "DOMContentLoaded": ["enhance.copyButtons", "composer.initial", "times.update", "scroll.toLatest"],
  };
  const handlers = {}; // event -> "module.handler" -> function

  function on(event, name, handler) {
    const order = ORDER[event];
    if (!order || order.indexOf(name) < 0) throw new Error("Chat.on: " + name + " is not in ORDER[\"" + event + "\"]");
    if (!handlers[event]) {
      handlers[event] = {};
      // The one listener for this event.
      const target = event === "DOMContentLoaded" ? document : document.body;
      target.addEventListener(event, function (evt) { dispatch(event, evt); });
    }
    if (handlers[event][name]) throw new Error("Chat.on: " + name + " twice for " + event);
    handlers[event][name] = handler;
  }
  function dispatch(event, evt) {
    ORDER[event].forEach(function (name) {
      const handler = handlers[event][name];
      if (!handler) return; // its module is not on this page's list of scripts
      // As separate listeners did: one handler's error does not stop the next.
      try { handler(evt); } catch (error) { window.reportError(error); }
    });
  }

  function transcript() { return document.getElementById("transcript"); }
  function composer() { return document.getElementById("composer"); }
  function focusComposer() {
    const box = document.querySelector("#composer textarea");
    if (box) box.focus();
  }
  // The server's limit, from the textarea's maxlength (one number, in the form).
  function maxChars(box) { return parseInt(box.getAttribute("maxlength") || "10000", 10); }
  // This tab's optimistic bubble of a send, by its client_id.
  function findPending(clientId) {
    return document.querySelector('[data-pending-id="' + clientId + '"]');
  }
  // The client_id of a send (or a retry of one), from its request's headers.
  function requestClientId(evt) {
    const config = evt.detail.requestConfig;
    return config && config.headers ? config.headers["X-Client-Id"] : null;
  }
  // The server's reason, when it sent one as text (our refusals are text/plain); never the
  // HTML of an error page.
  function serverText(xhr) {
    const type = xhr.getResponseHeader("Content-Type") || "";
    return type.indexOf("text/plain") === 0 ? xhr.responseText : "";
  }

  // The one CSRF source. Signing in again (in another tab) gives the session a new token:
  // send the cookie's current one, not the one this page was rendered with.
  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/); // CSRF_COOKIE_NAME
    return match ? decodeURIComponent(match[1]) : null;
  }
  on("htmx:configRequest", "csrf.header", function (evt) {
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

  return {
    on: on, transcript: transcript, composer: composer, focusComposer: focusComposer,
    maxChars: maxChars, findPending: findPending, requestClientId: requestClientId,
    serverText: serverText, csrfToken: csrfToken,
  };
})();
