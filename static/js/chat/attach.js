// Attachments in the composer: files chosen (the Attach button's file input), dropped on the
// composer or pasted (images) are uploaded at once, each as a chip with its name, size and
// progress, removable until sent. An uploaded file's chip holds a hidden `attachment` input
// with its id, so the send (sending.js) carries the ids; the send takes the chips with it
// (Chat.takeAttachments) and gives them back if it is refused (Chat.restoreAttachments).
(function () {
  "use strict";

  function list() { return document.getElementById("composer-files"); }
  function input() { return document.getElementById("attach-input"); }

  function sizeLabel(size) {
    if (size < 1024) return size + " bytes";
    if (size < 1024 * 1024) return (size / 1024).toFixed(1) + " KB";
    return (size / 1024 / 1024).toFixed(1) + " MB";
  }

  function chipFor(file) {
    const chip = document.createElement("li");
    chip.className = "file-chip uploading";
    const name = document.createElement("span");
    name.className = "file-name";
    name.textContent = file.name || "pasted image";
    const size = document.createElement("span");
    size.className = "file-size";
    size.textContent = sizeLabel(file.size);
    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", "Uploading " + name.textContent);
    const state = document.createElement("span");
    state.className = "file-state";
    state.setAttribute("role", "status");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn btn-small btn-link file-remove";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", "Remove " + name.textContent);
    chip.append(name, size, progress, state, remove);
    return chip;
  }

  function upload(file) {
    const box = list();
    const field = input();
    if (!box || !field) return;
    const chip = chipFor(file);
    box.appendChild(chip);
    const body = new FormData();
    body.append("file", file, file.name || "pasted-image.png");
    const xhr = new XMLHttpRequest();
    chip._xhr = xhr;
    xhr.open("POST", field.dataset.uploadUrl);
    xhr.setRequestHeader("X-CSRFToken", Chat.csrfToken());
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", function (evt) {
      if (evt.lengthComputable) chip.querySelector("progress").value = Math.round((evt.loaded / evt.total) * 100);
    });
    xhr.addEventListener("load", function () {
      chip.classList.remove("uploading");
      chip.querySelector("progress").remove();
      const data = xhr.response || {};
      if (xhr.status === 201 && data.id) {
        const id = document.createElement("input");
        id.type = "hidden";
        id.name = "attachment";
        id.value = data.id;
        chip.appendChild(id);
        chip.dataset.attachmentId = data.id;
        chip.querySelector(".file-name").textContent = data.name;
        chip.querySelector(".file-size").textContent = data.size_label;
        chip.classList.add("uploaded", "file-" + data.kind);
      } else {
        failed(chip, data.error || "The file could not be uploaded (" + xhr.status + ").");
      }
      syncSend();
    });
    xhr.addEventListener("error", function () {
      chip.classList.remove("uploading");
      failed(chip, "The file could not be uploaded: you seem to be offline.");
    });
    xhr.send(body);
  }

  function failed(chip, reason) {
    const progress = chip.querySelector("progress");
    if (progress) progress.remove();
    chip.classList.add("failed");
    const state = chip.querySelector(".file-state");
    state.setAttribute("role", "alert");
    state.textContent = reason;
  }

  function uploadAll(files) {
    Array.prototype.forEach.call(files || [], upload);
  }

  // Send follows the files too: files alone can be sent.
  function syncSend() {
    const form = Chat.composer();
    if (form && Chat.syncSendButton) Chat.syncSendButton(form);
  }
  // Uploaded files ready to go with the next send.
  Chat.hasAttachments = function () {
    const box = list();
    return !!(box && box.querySelector("input[name=attachment]"));
  };
  // Uploads still running: the send waits for them (sending.js says so).
  Chat.uploadsPending = function () {
    const box = list();
    return !!(box && box.querySelector(".file-chip.uploading"));
  };
  // The uploaded chips leave the composer with a send: [{id, name}] and the elements.
  Chat.takeAttachments = function () {
    const box = list();
    if (!box) return [];
    const taken = [];
    box.querySelectorAll(".file-chip").forEach(function (chip) {
      if (chip.dataset.attachmentId) taken.push({ id: chip.dataset.attachmentId, name: chip.querySelector(".file-name").textContent, chip: chip });
      chip.remove();
    });
    return taken;
  };
  // A refused send: its files come back to the composer, as its text does.
  Chat.restoreAttachments = function (taken) {
    const box = list();
    if (!box || !taken) return;
    taken.forEach(function (item) { box.appendChild(item.chip); });
    syncSend();
  };

  document.addEventListener("change", function (evt) {
    if (evt.target !== input()) return;
    uploadAll(evt.target.files);
    evt.target.value = ""; // the same file can be chosen again after a Remove
  });
  document.addEventListener("click", function (evt) {
    const target = evt.target;
    if (!(target instanceof Element) || !target.closest(".file-remove")) return;
    const chip = target.closest(".file-chip");
    if (!chip || !chip.closest("#composer-files")) return;
    if (chip._xhr && chip.classList.contains("uploading")) chip._xhr.abort();
    chip.remove();
    syncSend();
    Chat.focusComposer();
  });

  // Drag and drop on the composer.
  document.addEventListener("dragover", function (evt) {
    const form = evt.target instanceof Element && evt.target.closest("#composer");
    if (!form || !evt.dataTransfer || Array.prototype.indexOf.call(evt.dataTransfer.types, "Files") < 0) return;
    evt.preventDefault();
    form.classList.add("drop-target");
  });
  document.addEventListener("dragleave", function (evt) {
    const form = evt.target instanceof Element && evt.target.closest("#composer");
    if (form && !form.contains(evt.relatedTarget)) form.classList.remove("drop-target");
  });
  document.addEventListener("drop", function (evt) {
    const form = evt.target instanceof Element && evt.target.closest("#composer");
    if (!form || !evt.dataTransfer || !evt.dataTransfer.files.length) return;
    evt.preventDefault();
    form.classList.remove("drop-target");
    uploadAll(evt.dataTransfer.files);
  });

  // A pasted image (a screenshot) is attached; pasted text stays text.
  document.addEventListener("paste", function (evt) {
    const box = evt.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.closest("#composer") || !evt.clipboardData) return;
    const images = Array.prototype.filter.call(evt.clipboardData.files || [], function (file) {
      return /^image\//.test(file.type);
    });
    if (!images.length) return;
    evt.preventDefault();
    uploadAll(images);
  });
})();
