// Copy buttons on code blocks (added to the page and to every piece htmx swaps in), and a
// message's Copy, which copies its Markdown source.
(function () {
  "use strict";

  // The language, from data-lang or the renderer's class="language-x" on the code.
  function language(pre) {
    if (pre.dataset.lang) return pre.dataset.lang;
    const code = pre.querySelector("code[class*=language-]");
    const match = code && /(?:^|\s)language-(\S+)/.exec(code.className);
    return match ? match[1] : "";
  }

  // A bar above the code (the pre's reserved top padding, see app.css) holds the language and
  // the button, so neither covers the text. Idempotent: a pre is enhanced once.
  function enhance(pre) {
    if (pre.querySelector(".copy-code")) return;
    const head = document.createElement("span");
    head.className = "code-head";
    head.setAttribute("aria-hidden", "true");
    head.textContent = language(pre);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code btn btn-small";
    button.textContent = "Copy";
    pre.prepend(head);
    pre.appendChild(button);
  }

  // `root` may itself be the pre (htmx:load fires with a swapped element, which an SSE swap
  // can make a top-level <pre>).
  function addCopyButtons(root) {
    // A live answer's open code (.md-tail-code) is still being written: no Copy yet.
    const code = ".markdown pre:not(.md-tail-code)";
    if (root.matches && root.matches(code)) enhance(root);
    if (root.querySelectorAll) root.querySelectorAll(code).forEach(enhance);
  }
  Chat.on("htmx:load", "enhance.copyButtons", function (evt) { addCopyButtons(evt.detail.elt); });
  Chat.on("DOMContentLoaded", "enhance.copyButtons", function () { addCopyButtons(document); });

  // The text a message was written in: a user's plain body is it; an answer carries its
  // Markdown in a <template> (the rendered HTML would lose the markup).
  function messageSource(article) {
    const source = article.querySelector("template.msg-source");
    if (source) return source.content.textContent;
    const plain = article.querySelector(".msg-body.plain");
    return plain ? plain.textContent : "";
  }
  // Copies `text` and says how it went on the button for a moment. `label`: the button's
  // accessible name at rest, kept in step with what it says (none: its text is its name).
  function copy(button, text, label) {
    const say = function (words) {
      button.textContent = words;
      if (label) button.setAttribute("aria-label", words === "Copy" ? label : words);
    };
    navigator.clipboard.writeText(text).then(function () {
      say("Copied");
      setTimeout(function () { say("Copy"); }, 1500);
    }, function () {
      say("Copy failed");
      setTimeout(function () { say("Copy"); }, 3000);
    });
  }
  document.addEventListener("click", function (evt) {
    if (!(evt.target instanceof Element)) return;
    const message = evt.target.closest(".copy-message");
    const article = message && message.closest("article.msg");
    if (article) copy(message, messageSource(article), "Copy message");
    const share = evt.target.closest(".copy-share");
    if (share) copy(share, share.dataset.copy, "Copy link");
    const code = evt.target.closest(".copy-code");
    if (code) {
      const text = code.parentElement.querySelector("code");
      copy(code, text ? text.innerText : "");
    }
  });
})();
