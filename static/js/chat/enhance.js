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
  function feedback(button, text, label) {
    button.textContent = text;
    button.setAttribute("aria-label", label);
  }
  document.addEventListener("click", function (evt) {
    const button = evt.target instanceof Element && evt.target.closest(".copy-message");
    const article = button && button.closest("article.msg");
    if (!article) return;
    const reset = function () { feedback(button, "Copy", "Copy message"); };
    navigator.clipboard.writeText(messageSource(article)).then(function () {
      feedback(button, "Copied", "Copied");
      setTimeout(reset, 1500);
    }, function () {
      feedback(button, "Copy failed", "Copy failed");
      setTimeout(reset, 3000);
    });
  });

  document.addEventListener("click", function (evt) {
    const copy = evt.target instanceof Element && evt.target.closest(".copy-code");
    if (!copy) return;
    const code = copy.parentElement.querySelector("code");
    navigator.clipboard.writeText(code ? code.innerText : "").then(function () {
      copy.textContent = "Copied";
      setTimeout(function () { copy.textContent = "Copy"; }, 1500);
    }, function () {
      copy.textContent = "Copy failed";
      setTimeout(function () { copy.textContent = "Copy"; }, 3000);
    });
  });
})();
