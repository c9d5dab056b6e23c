/*
 * Streams files dropped on (or chosen in) a .ps-dropzone straight to the REST API.
 *
 * The zone's data attributes say where and what to send (see dashboard/components/upload.py):
 *   data-endpoint  the URL to POST multipart/form-data to (field "file" plus the form fields)
 *   data-fields    "field:elementId,..." form controls whose values go with every file
 *   data-accept    the file input's accept list
 *   data-status    the id of the element that lists each file's progress
 *   data-refresh   the id of a hidden Dash button clicked after each stored file
 * Files are sent one after another. Every server message is shown with textContent, never as HTML.
 */
(function () {
  "use strict";

  function field(id) {
    var el = document.getElementById(id);
    return el && typeof el.value === "string" ? el.value.trim() : "";
  }

  function formFor(zone, file, single) {
    var form = new FormData();
    form.append("file", file, file.name);
    (zone.dataset.fields || "").split(",").forEach(function (pair) {
      var parts = pair.split(":");
      if (parts.length !== 2) return;
      var value = field(parts[1]);
      if (parts[0] === "name" && !single) value = ""; // several files: each keeps its own file name
      if (value) form.append(parts[0], value);
    });
    return form;
  }

  function statusRow(zone, file) {
    var list = document.getElementById(zone.dataset.status);
    var row = document.createElement("div");
    row.className = "ps-upload-item";
    var name = document.createElement("span");
    name.className = "ps-upload-name";
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    var state = document.createElement("span");
    state.className = "ps-upload-state";
    state.textContent = "waiting";
    row.appendChild(name);
    row.appendChild(bar);
    row.appendChild(state);
    if (list) list.appendChild(row);
    return { row: row, bar: bar, state: state };
  }

  function errorText(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && typeof body.detail === "string") return body.detail;
      if (body && body.detail) return JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    return "upload failed (HTTP " + xhr.status + ")";
  }

  function refresh(zone) {
    var button = document.getElementById(zone.dataset.refresh);
    if (button) button.click();
  }

  function send(zone, file, single) {
    var ui = statusRow(zone, file);
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", zone.dataset.endpoint);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (event) {
        if (!event.lengthComputable) return;
        var pct = Math.round((100 * event.loaded) / event.total);
        ui.bar.value = pct;
        ui.state.textContent = pct < 100 ? "uploading " + pct + "%" : "checking…";
      };
      xhr.onload = function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          var body = {};
          try { body = JSON.parse(xhr.responseText); } catch (e) { /* keep {} */ }
          ui.bar.value = 100;
          ui.row.classList.add("ps-upload-ok");
          ui.state.textContent = "stored as #" + body.id;
          refresh(zone);
        } else {
          ui.row.classList.add("ps-upload-error");
          ui.state.setAttribute("role", "alert");
          ui.state.textContent = errorText(xhr);
        }
        resolve();
      };
      xhr.onerror = function () {
        ui.row.classList.add("ps-upload-error");
        ui.state.setAttribute("role", "alert");
        ui.state.textContent = "upload failed: the server could not be reached";
        resolve();
      };
      ui.state.textContent = "uploading 0%";
      xhr.send(formFor(zone, file, single));
    });
  }

  function uploadAll(zone, fileList) {
    var files = Array.prototype.slice.call(fileList || []);
    var single = files.length === 1;
    return files.reduce(function (chain, file) {
      return chain.then(function () { return send(zone, file, single); });
    }, Promise.resolve());
  }

  function ensureInput(zone) {
    if (zone.querySelector("input[type=file]")) return;
    var input = document.createElement("input");
    input.type = "file";
    input.multiple = true;
    input.className = "ps-file-input";
    if (zone.dataset.accept) input.accept = zone.dataset.accept;
    input.addEventListener("change", function () {
      uploadAll(zone, input.files).then(function () { input.value = ""; });
    });
    zone.appendChild(input);
  }

  function scan() {
    document.querySelectorAll(".ps-dropzone").forEach(ensureInput);
  }

  function zoneOf(event) {
    return event.target && event.target.closest ? event.target.closest(".ps-dropzone") : null;
  }

  document.addEventListener("dragover", function (event) {
    var zone = zoneOf(event);
    if (!zone) return;
    event.preventDefault();
    zone.classList.add("ps-dragover");
  });
  document.addEventListener("dragleave", function (event) {
    var zone = zoneOf(event);
    if (zone) zone.classList.remove("ps-dragover");
  });
  document.addEventListener("drop", function (event) {
    var zone = zoneOf(event);
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("ps-dragover");
    uploadAll(zone, event.dataTransfer && event.dataTransfer.files);
  });

  new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true });
  if (document.readyState !== "loading") scan();
  else document.addEventListener("DOMContentLoaded", scan);
})();
