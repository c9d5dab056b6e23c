/*
 * Streams files dropped on (or chosen in) a .ps-dropzone straight to the REST API.
 *
 * The zone's data attributes say where and what to send (see dashboard/components/upload.py):
 *   data-endpoint   the URL that registers a file (POST multipart/form-data: the form fields, plus
 *                   either "file" or "upload_id")
 *   data-resumable  when set, the tus 1.0.0 endpoint (/api/uploads) that receives the bytes first, in
 *                   chunks that survive a dropped connection; the endpoint then gets "upload_id"
 *   data-kind       what the file is ("checkpoint"), sent as tus metadata
 *   data-chunk-size bytes per PATCH (default 8 MiB)
 *   data-fields     "field:elementId,..." form controls whose values go with every file
 *   data-accept     the file input's accept list
 *   data-status     the id of the element that lists each file's progress
 *   data-refresh    the id of a hidden Dash button clicked after each stored file
 *
 * Resumable uploads: each chunk is a PATCH at the server's offset (with a sha256 Upload-Checksum
 * where the browser offers crypto.subtle). A network error, a 409 (offset or lock), a 460 (checksum)
 * or a 5xx shows "resuming", waits (1 s, 2 s, 4 s, ... up to 15 s), asks HEAD for the offset the
 * server holds and goes on from there, up to MAX_TRIES times in a row. The upload's URL is kept in
 * localStorage until it completes, so choosing the same file again after a reload resumes it too.
 * Files are sent one after another. Every server message is shown with textContent, never as HTML.
 */
(function () {
  "use strict";

  var TUS_VERSION = "1.0.0";
  var DEFAULT_CHUNK = 8 * 1024 * 1024;
  var MAX_TRIES = 8;
  var REQUEST_TIMEOUT_MS = 300000;
  var RETRYABLE = [0, 409, 423, 429, 460, 500, 502, 503, 504];
  var STORE_PREFIX = "prunescope.upload:";

  function field(id) {
    var el = document.getElementById(id);
    return el && typeof el.value === "string" ? el.value.trim() : "";
  }

  function formFor(zone, single) {
    var form = new FormData();
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
    row.dataset.resumes = "0";
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

  function showProgress(ui, done, total) {
    var pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    ui.bar.value = pct;
    ui.state.textContent = pct < 100 ? "uploading " + pct + "%" : "checking…";
  }

  function showResuming(ui, tries) {
    ui.row.classList.add("ps-upload-resuming");
    ui.row.dataset.resumes = String(Number(ui.row.dataset.resumes) + 1);
    ui.state.textContent = "connection lost: resuming (try " + tries + " of " + MAX_TRIES + ")…";
  }

  function showFailure(ui, message) {
    ui.row.classList.remove("ps-upload-resuming");
    ui.row.classList.add("ps-upload-error");
    ui.state.setAttribute("role", "alert");
    ui.state.textContent = message;
  }

  function errorText(resp) {
    if (resp.status === 0) return "upload failed: the server could not be reached";
    try {
      var body = JSON.parse(resp.text);
      if (body && typeof body.detail === "string") return body.detail;
      if (body && body.detail) return JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    return "upload failed (HTTP " + resp.status + ")";
  }

  function refresh(zone) {
    var button = document.getElementById(zone.dataset.refresh);
    if (button) button.click();
  }

  /* One HTTP request; resolves (never rejects) with {status, text, header}; status 0: no answer. */
  function request(method, url, headers, body, onUploadProgress) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.timeout = REQUEST_TIMEOUT_MS;
      xhr.setRequestHeader("Accept", "application/json");
      Object.keys(headers || {}).forEach(function (key) { xhr.setRequestHeader(key, headers[key]); });
      if (onUploadProgress) {
        xhr.upload.onprogress = function (event) { onUploadProgress(event.loaded); };
      }
      function answer(status) {
        resolve({
          status: status,
          text: status ? xhr.responseText : "",
          header: function (name) { return status ? xhr.getResponseHeader(name) : null; },
        });
      }
      xhr.onload = function () { answer(xhr.status); };
      xhr.onerror = xhr.onabort = xhr.ontimeout = function () { answer(0); };
      xhr.send(body === undefined ? null : body);
    });
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function backoff(tries) {
    return Math.min(1000 * Math.pow(2, tries - 1), 15000);
  }

  function base64OfBytes(bytes) {
    var binary = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  function metadata(values) {
    return Object.keys(values)
      .filter(function (key) { return values[key]; })
      .map(function (key) { return key + " " + base64OfBytes(new TextEncoder().encode(values[key])); })
      .join(",");
  }

  /* "sha256 <base64>" of a chunk, or null where crypto.subtle is missing (plain http off localhost). */
  async function checksum(blob) {
    if (!window.crypto || !window.crypto.subtle) return null;
    try {
      var digest = await window.crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
      return "sha256 " + base64OfBytes(new Uint8Array(digest));
    } catch (e) {
      return null;
    }
  }

  function storeKey(zone, file) {
    return STORE_PREFIX + zone.dataset.resumable + ":" + file.name + ":" + file.size + ":" + file.lastModified;
  }

  function remembered(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }

  function remember(key, url) {
    try {
      if (url) window.localStorage.setItem(key, url);
      else window.localStorage.removeItem(key);
    } catch (e) { /* storage disabled: resuming after a reload is lost, nothing else */ }
  }

  /* Retries `attempt` (a function returning a request promise) on network errors and 5xx. */
  async function withRetries(ui, attempt) {
    for (var tries = 0; ; tries++) {
      var resp = await attempt();
      if (RETRYABLE.indexOf(resp.status) < 0 || resp.status === 409 || tries >= MAX_TRIES) return resp;
      showResuming(ui, tries + 1);
      await sleep(backoff(tries + 1));
    }
  }

  /* An upload URL: a remembered one this file can resume (with its offset), or a new one. */
  async function openUpload(zone, file, ui, key) {
    var previous = remembered(key);
    if (previous) {
      var head = await request("HEAD", previous, { "Tus-Resumable": TUS_VERSION });
      if (head.status === 200 && Number(head.header("Upload-Length")) === file.size) {
        return { url: previous, offset: Number(head.header("Upload-Offset")) };
      }
      remember(key, null);
    }
    var headers = {
      "Tus-Resumable": TUS_VERSION,
      "Upload-Length": String(file.size),
      "Upload-Metadata": metadata({ filename: file.name, kind: zone.dataset.kind || "" }),
    };
    var created = await withRetries(ui, function () {
      return request("POST", zone.dataset.resumable, headers);
    });
    if (created.status !== 201) throw new Error(errorText(created));
    var url = new URL(created.header("Location"), window.location.href).href;
    remember(key, url);
    return { url: url, offset: 0 };
  }

  /* Sends every byte of `file` through tus; returns the upload's id once the server holds them all. */
  async function sendChunks(zone, file, ui) {
    var key = storeKey(zone, file);
    var chunk = Number(zone.dataset.chunkSize) || DEFAULT_CHUNK;
    var upload = await openUpload(zone, file, ui, key);
    var url = upload.url;
    var offset = upload.offset;
    var tries = 0;
    var needOffset = false;
    showProgress(ui, offset, file.size);
    while (needOffset || offset < file.size) {
      var resp;
      if (needOffset) {
        resp = await request("HEAD", url, { "Tus-Resumable": TUS_VERSION });
        if (resp.status === 200) {
          offset = Number(resp.header("Upload-Offset"));
          needOffset = false;
          continue;
        }
      } else {
        var start = offset;
        var blob = file.slice(start, Math.min(start + chunk, file.size));
        var headers = {
          "Tus-Resumable": TUS_VERSION,
          "Upload-Offset": String(start),
          "Content-Type": "application/offset+octet-stream",
        };
        var sum = await checksum(blob);
        if (sum) headers["Upload-Checksum"] = sum;
        resp = await request("PATCH", url, headers, blob, function (loaded) {
          showProgress(ui, start + loaded, file.size);
        });
        if (resp.status === 204) {
          offset = Number(resp.header("Upload-Offset"));
          tries = 0;
          ui.row.classList.remove("ps-upload-resuming");
          showProgress(ui, offset, file.size);
          continue;
        }
      }
      if (resp.status === 404 || resp.status === 410) {
        remember(key, null);
        throw new Error("the server no longer has this upload (" + errorText(resp) + "); drop the file again");
      }
      if (RETRYABLE.indexOf(resp.status) < 0) throw new Error(errorText(resp));
      tries += 1;
      if (tries > MAX_TRIES) throw new Error("gave up after " + MAX_TRIES + " tries: " + errorText(resp));
      showResuming(ui, tries);
      await sleep(backoff(tries));
      needOffset = true;
    }
    remember(key, null); // registering consumes the upload, whatever the answer
    return url.split("/").pop();
  }

  function registered(zone, ui, resp) {
    if (resp.status >= 200 && resp.status < 300) {
      var body = {};
      try { body = JSON.parse(resp.text); } catch (e) { /* keep {} */ }
      ui.bar.value = 100;
      ui.row.classList.remove("ps-upload-resuming");
      ui.row.classList.add("ps-upload-ok");
      ui.state.textContent = "stored as #" + body.id;
      refresh(zone);
    } else {
      showFailure(ui, errorText(resp));
    }
  }

  async function sendResumable(zone, file, single, ui) {
    var uploadId;
    try {
      uploadId = await sendChunks(zone, file, ui);
    } catch (err) {
      showFailure(ui, err.message);
      return;
    }
    ui.bar.value = 100;
    ui.state.textContent = "checking…";
    var form = formFor(zone, single);
    form.append("upload_id", uploadId);
    registered(zone, ui, await request("POST", zone.dataset.endpoint, {}, form));
  }

  async function sendMultipart(zone, file, single, ui) {
    var form = formFor(zone, single);
    form.append("file", file, file.name);
    ui.state.textContent = "uploading 0%";
    var resp = await request("POST", zone.dataset.endpoint, {}, form, function (loaded) {
      showProgress(ui, loaded, file.size);
    });
    registered(zone, ui, resp);
  }

  function send(zone, file, single) {
    var ui = statusRow(zone, file);
    var run = zone.dataset.resumable ? sendResumable : sendMultipart;
    return run(zone, file, single, ui).catch(function (err) {
      showFailure(ui, "upload failed: " + (err && err.message ? err.message : String(err)));
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
