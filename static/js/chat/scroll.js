// Scrolling: follow new text unless the reader scrolled up ("Jump to latest" then), and
// "Load earlier messages" keeps the message being read where it was.
(function () {
  "use strict";

  const NEAR_BOTTOM_PX = 96;
  let following = true;
  let autoTop = 0;  // where our last scroll to the latest text put the page

  function scroller() { return document.scrollingElement || document.documentElement; }
  function jumpButton() { return document.getElementById("jump-latest"); }
  function nearBottom() {
    const el = scroller();
    return el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
  }
  function scrollToLatest() {
    const el = scroller();
    el.scrollTop = el.scrollHeight;
    autoTop = el.scrollTop;
    following = true;
    const jump = jumpButton();
    if (jump) jump.hidden = true;
  }
  function contentGrew() {
    if (!Chat.transcript()) return;
    if (following) { scrollToLatest(); return; }
    const jump = jumpButton();
    if (jump) jump.hidden = false;
  }
  Chat.scrollToLatest = scrollToLatest;

  window.addEventListener("scroll", function () {
    // Our own scroll's event comes a frame later, when more text may have arrived: only
    // the reader scrolling up from where we put the page stops the following.
    if (following && scroller().scrollTop >= autoTop - 1) return;
    following = nearBottom();
    const jump = jumpButton();
    if (jump && following) jump.hidden = true;
  }, { passive: true });
  document.addEventListener("click", function (evt) {
    if (evt.target instanceof Element && evt.target.closest("#jump-latest")) scrollToLatest();
  });

  Chat.on("htmx:load", "scroll.follow", function (evt) {
    const elt = evt.detail.elt;
    if (elt.classList && elt.classList.contains("msg")) contentGrew();
    // A new chat's first send swapped in the conversation's #main: at its latest, following.
    if (elt.id === "main") scrollToLatest();
  });
  Chat.on("DOMContentLoaded", "scroll.toLatest", function () {
    if (!Chat.transcript()) return;
    // A search result opened (?at=...#msg-<id>): that message, not the latest, in view.
    const found = location.hash.indexOf("#msg-") === 0 ? document.getElementById(location.hash.slice(1)) : null;
    if (found && Chat.transcript().contains(found)) {
      found.scrollIntoView({ block: "center" });
      following = nearBottom();
      return;
    }
    scrollToLatest();
  });
  Chat.on("htmx:sseMessage", "scroll.follow", contentGrew);

  // ---- "Load earlier messages" keeps the message being read in place ---------------
  let keptFromBottom = null;
  Chat.on("htmx:beforeSwap", "scroll.keepPlace", function (evt) {
    const target = evt.detail.target;
    // Only for a swap that happens: a failed request has no afterSwap to use it up, and the
    // next swap (a message sent) would jump to the place kept here.
    if (evt.detail.shouldSwap && target && target.classList && target.classList.contains("load-earlier")) {
      keptFromBottom = scroller().scrollHeight - scroller().scrollTop;
    }
  });
  Chat.on("htmx:afterSwap", "scroll.keepPlace", function () {
    if (keptFromBottom === null) return;
    scroller().scrollTop = scroller().scrollHeight - keptFromBottom;
    keptFromBottom = null;
  });
})();
