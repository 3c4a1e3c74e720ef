// Live sync across tabs and devices: the page's one WebSocket (htmx ws extension on
// #live-sync). On every connect and reconnect the page says which conversation it shows and
// the last message seq it has; the server answers with what is missing, then with what
// other tabs do, as out-of-band swaps. New answers stream over their own SSE, not here.
(function () {
  "use strict";

  // Channel layers forget group members after a day: say again now and then.
  const RENEW_MS = 15 * 60 * 1000;
  const LOGGED_OUT = 4401; // conversations/consumers.py
  let socket = null;
  let signedOut = null; // the socket a logout closed

  function lastSeq() {
    let last = 0;
    document.querySelectorAll("#transcript .msg[data-seq]").forEach(function (msg) {
      last = Math.max(last, parseInt(msg.dataset.seq, 10) || 0);
    });
    return last;
  }
  function listedConversations() {
    return document.querySelectorAll("#conversation-list a[id^='conv-']").length;
  }

  // The conversation the page shows: the transcript's (a new chat's first send swaps in
  // the conversation it made), else the one the page was rendered for, if any.
  function shownConversation(sync) {
    const transcript = Chat.transcript();
    if (transcript && transcript.dataset.conversation) return transcript.dataset.conversation;
    return sync.dataset.conversation || null;
  }

  function announce() {
    const sync = document.getElementById("live-sync");
    if (!socket || !sync) return;
    socket.send(JSON.stringify({
      conversation: shownConversation(sync),
      after_seq: lastSeq(),
      // The sidebar's list as far as it is open: a frame re-renders that much of it.
      listed: listedConversations(),
    }));
  }

  // This tab's own send arrives twice (its HTTP response and the socket), in either order:
  // whichever comes second drops the bubbles the page already has (except `keep`, the
  // bubble a response replaces in place, as a retry does with the answer it retries).
  function dropKnownMessages(root, keep) {
    let dropped = false;
    root.querySelectorAll(".msg[id]").forEach(function (msg) {
      if (msg.id !== keep && document.getElementById(msg.id)) { msg.remove(); dropped = true; }
    });
    return dropped;
  }

  // A confirmed message replaces this tab's optimistic bubble of the same send.
  function confirmPending(root) {
    root.querySelectorAll(".msg[data-client-id]").forEach(function (msg) {
      const pending = Chat.findPending(msg.dataset.clientId);
      if (pending) pending.remove();
    });
  }

  Chat.on("htmx:wsOpen", "sync.announce", function (evt) {
    socket = evt.detail.socketWrapper;
    announce();
  });
  // The extension retries only abnormal closes (1006, 1011-1013). A socket the server ended
  // cleanly (Daphne's --websocket_timeout, a restart) is retried here; a logout (4401) is not.
  Chat.on("htmx:wsClose", "sync.closed", function (evt) {
    socket = null;
    const code = evt.detail.event.code;
    if (code === LOGGED_OUT) {
      signedOut = evt.detail.socketWrapper;
      document.body.dispatchEvent(new CustomEvent("chat:signedOut"));
      return;
    }
    if ([1006, 1011, 1012, 1013].indexOf(code) >= 0) return;
    const wrapper = evt.detail.socketWrapper;
    setTimeout(function () {
      if (document.getElementById("live-sync")) wrapper.reconnect();
    }, 1000 + Math.random() * 4000);
  });
  setInterval(announce, RENEW_MS);
  // A new chat's first send swapped in its conversation's #main: say it is shown now.
  Chat.on("htmx:load", "sync.shown", function (evt) {
    if (evt.detail.elt && evt.detail.elt.id === "main") announce();
  });

  // "Older conversations" opened more of the list: say so, or the next frame folds it back.
  let listGrew = false;
  Chat.on("htmx:beforeSwap", "sync.listGrew", function (evt) {
    const target = evt.detail.target;
    if (target && target.closest && target.closest("#conversation-list")) listGrew = true;
  });
  Chat.on("htmx:afterSettle", "sync.listGrew", function () {
    if (listGrew) { listGrew = false; announce(); }
  });

  // Signed in again (in another tab): the first request that gets through reopens the socket.
  Chat.on("htmx:afterRequest", "sync.reconnect", function (evt) {
    if (!signedOut || !evt.detail.successful) return;
    const wrapper = signedOut;
    signedOut = null;
    if (document.getElementById("live-sync")) wrapper.reconnect();
  });

  // A frame rendered for a shorter list than the page now shows ("Older conversations" was
  // opened since) would fold it back, and one that comes while older ones load would take
  // away the place they go. Either way the frame that answers the newer count follows.
  Chat.on("htmx:oobBeforeSwap", "sync.staleList", function (evt) {
    const fragment = evt.detail.fragment;
    if (!fragment || fragment.id !== "conversation-list") return;
    const stale = parseInt(fragment.dataset.listed || "0", 10) < listedConversations();
    if (stale || document.querySelector("#conversation-list .htmx-request")) evt.detail.shouldSwap = false;
  });

  // The title: a frame never closes a rename or delete form the user has open (saving or
  // cancelling shows the title anyway), and one that shows what the page already has (this
  // tab's own rename, coming back a moment later) is not swapped, so the focus stays put.
  function text(node) { return node.textContent.replace(/\s+/g, " ").trim(); }
  Chat.on("htmx:oobBeforeSwap", "sync.title", function (evt) {
    const target = evt.detail.target;
    if (!target || target.id !== "chat-title") return;
    const fragment = evt.detail.fragment;
    if (target.tagName === "FORM" || (fragment && text(fragment) === text(target))) evt.detail.shouldSwap = false;
  });

  // Messages a frame appends: those the page has are dropped, the pending bubbles they
  // confirm removed.
  // This tab's own version switch or edit comes back by the socket too: a transcript of the
  // messages the page already shows (each streams or settles by itself) is not swapped, so
  // the focus and the open streams stay put.
  function messageIds(root) {
    return Array.prototype.map.call(root.querySelectorAll(".msg[id]"), function (msg) { return msg.id; }).join(" ");
  }
  Chat.on("htmx:oobBeforeSwap", "sync.sameTranscript", function (evt) {
    const target = evt.detail.target;
    const fragment = evt.detail.fragment;
    if (!target || target.id !== "transcript" || !fragment) return;
    const ids = messageIds(fragment);
    if (ids && ids === messageIds(target)) evt.detail.shouldSwap = false;
  });

  Chat.on("htmx:oobBeforeSwap", "sync.appended", function (evt) {
    const fragment = evt.detail.fragment;
    if (!fragment || !fragment.hasAttribute || !fragment.hasAttribute("data-sync-append")) return;
    dropKnownMessages(fragment);
    confirmPending(fragment);
  });

  // Sends append to #transcript, and a retry or regenerate replaces its answer with the new
  // one: the socket may have brought it already. A version switch or an edit replaces the
  // whole transcript (data-replaces-transcript), which keeps every message it brings.
  Chat.on("htmx:beforeSwap", "sync.dropKnown", function (evt) {
    const response = evt.detail.serverResponse;
    const target = evt.detail.target;
    if (!target || !(target.id === "transcript" || target.classList.contains("msg"))) return;
    const asker = evt.detail.requestConfig && evt.detail.requestConfig.elt; // detail.elt is the target
    if (asker && asker.closest && asker.closest("[data-replaces-transcript]")) return;
    if (typeof response !== "string" || response.indexOf('id="msg-') < 0) return;
    const template = document.createElement("template");
    template.innerHTML = response;
    if (dropKnownMessages(template.content, target.id)) evt.detail.serverResponse = template.innerHTML;
  });

  Chat.on("htmx:wsAfterMessage", "sync.empty", function () {
    const empty = document.getElementById("transcript-empty");
    if (empty && document.querySelector("#transcript .msg")) empty.remove();
  });
})();
