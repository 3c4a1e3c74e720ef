// The tab's title follows the conversation's: the header's title swapped in (the first
// message named the conversation, a rename, or either coming from another tab by live sync)
// carries the document title the server would render for the page now.
(function () {
  "use strict";

  Chat.on("htmx:load", "title.follow", function (evt) {
    const root = evt.detail && evt.detail.elt;
    if (!(root instanceof Element)) return;
    const header = root.id === "chat-title" ? root : root.querySelector("#chat-title");
    // A rename or delete form has the same id and no title of its own.
    const title = header && header.dataset.documentTitle;
    if (title && document.title !== title) document.title = title;
  });
})();
