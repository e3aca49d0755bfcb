/* Resumable uploads for the GED forms (progressive enhancement).
 *
 * Without JavaScript the form posts multipart/form-data as usual. With it, a form carrying
 * data-resumable sends the file with the tus 1.0.0 protocol in 8 MiB pieces, shows a
 * <progress> bar, and after a network error asks the server where it stopped (HEAD) and
 * resumes from there instead of starting over.
 */
(function () {
  "use strict";
  var TUS = "1.0.0";
  var RETRY_DELAYS = [1000, 3000, 5000, 10000, 20000, 30000];

  function b64(text) {
    return btoa(unescape(encodeURIComponent(text)));
  }

  function request(method, url, headers, body, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      Object.keys(headers).forEach(function (k) { xhr.setRequestHeader(k, headers[k]); });
      if (onProgress && xhr.upload) {
        xhr.upload.onprogress = function (e) { if (e.lengthComputable) onProgress(e.loaded); };
      }
      xhr.onload = function () { resolve(xhr); };
      xhr.onerror = function () { reject(new Error("network")); };
      xhr.send(body || null);
    });
  }

  function errorMessage(xhr) {
    try { return JSON.parse(xhr.responseText).error.message; } catch (e) { return "Erreur " + xhr.status; }
  }

  function enhance(form) {
    var input = form.querySelector('input[type="file"]');
    var box = form.querySelector(".upload-progress");
    var bar = box && box.querySelector("progress");
    var status = box && box.querySelector("[data-status]");
    if (!input || !bar || !window.XMLHttpRequest || !window.Promise) return;
    var csrf = form.getAttribute("data-csrf");
    var base = { "Tus-Resumable": TUS, "X-CSRFToken": csrf };
    var button = form.querySelector('button[type="submit"]');
    // The form's one-time token (?once= of its action) keys the upload's creation: a second
    // click, or a retry, never creates a second document (Idempotency-Key, see the API).
    var once = "";
    try { once = new URL(form.action, window.location.href).searchParams.get("once") || ""; } catch (e) { once = ""; }
    var tries = 0, busy = false;
    var alertBox = null;

    function say(text) { if (status) status.textContent = text; }

    function clearAlert() {
      if (alertBox) { alertBox.parentNode.removeChild(alertBox); alertBox = null; }
    }

    // A failure: the progress box goes away, a clear alert says why, with "Réessayer".
    function fail(message) {
      busy = false;
      if (button) button.disabled = false;
      box.hidden = true;
      clearAlert();
      alertBox = document.createElement("div");
      alertBox.className = "alert alert-error upload-alert";
      alertBox.setAttribute("role", "alert");
      var p = document.createElement("p");
      p.textContent = message;
      alertBox.appendChild(p);
      var retry = document.createElement("button");
      retry.type = "button";
      retry.className = "secondary";
      retry.textContent = "Réessayer";
      retry.addEventListener("click", function () {
        if (form.requestSubmit) form.requestSubmit(button || undefined); else form.submit();
      });
      alertBox.appendChild(retry);
      form.parentNode.insertBefore(alertBox, form);
      retry.focus();
    }

    function sizeText(n) {
      var units = ["octets", "Ko", "Mo", "Go", "To"], i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
      return (i ? n.toFixed(1).replace(".", ",") : String(n)) + " " + units[i];
    }

    form.addEventListener("submit", function (event) {
      var file = input.files && input.files[0];
      if (!file) return;
      event.preventDefault();
      if (busy) return;  // a second click while sending: nothing more is sent
      clearAlert();
      // Before a byte leaves: the commune's remaining space (usage and reservations).
      var remaining = form.getAttribute("data-remaining");
      if (remaining !== null && remaining !== "" && file.size > parseInt(remaining, 10)) {
        fail("Espace de stockage insuffisant : ce fichier fait " + sizeText(file.size) +
             " et il reste " + sizeText(parseInt(remaining, 10)) +
             " dans l'espace de la commune. Libérez de la place ou demandez un quota plus grand.");
        return;
      }
      busy = true;
      tries += 1;
      if (button) button.disabled = true;
      box.hidden = false;
      say("");
      var meta = [["filename", file.name]];
      ["title", "type", "classification", "tags", "author", "document_date", "confidentiality",
       "retention_years", "final_fate", "status", "access"].forEach(function (name) {
        var field = form.elements[name];
        if (!field) return;
        var value = field.type === "radio" || field.length ? (form.querySelector('[name="' + name + '"]:checked') || field).value : field.value;
        if (value) meta.push([name, value]);
      });
      if (form.getAttribute("data-document")) meta.push(["document_id", form.getAttribute("data-document")]);
      var headers = Object.assign({}, base, {
        "Upload-Length": String(file.size),
        "Idempotency-Key": once ? once + "-" + tries : "upload-" + Date.now() + "-" + tries,
        "Upload-Metadata": meta.map(function (m) { return m[0] + " " + b64(m[1]); }).join(",")
      });
      var location, chunk = 8 * 1024 * 1024, attempt = 0;

      function show(offset) {
        var percent = file.size ? Math.floor(100 * offset / file.size) : 100;
        bar.value = percent;
        bar.textContent = percent + " %";
        say(percent + " % envoyés");
      }

      function send(offset) {
        if (offset >= file.size) return Promise.resolve(null);
        var end = Math.min(file.size, offset + chunk);
        var h = Object.assign({}, base, {
          "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream"
        });
        return request("PATCH", location, h, file.slice(offset, end), function (loaded) {
          show(offset + loaded);
        }).then(function (xhr) {
          if (xhr.status !== 204) throw new Error(errorMessage(xhr));
          attempt = 0;
          var next = parseInt(xhr.getResponseHeader("Upload-Offset"), 10);
          show(next);
          var doc = xhr.getResponseHeader("Document-Id");
          if (doc) return doc;
          return send(next);
        }, resume);
      }

      function resume() {
        if (attempt >= RETRY_DELAYS.length) throw new Error("La connexion est perdue : réessayez plus tard, l'envoi reprendra où il s'est arrêté.");
        var delay = RETRY_DELAYS[attempt++];
        say("Connexion interrompue : nouvelle tentative dans " + delay / 1000 + " s…");
        return new Promise(function (r) { setTimeout(r, delay); }).then(function () {
          return request("HEAD", location, base);
        }).then(function (xhr) {
          if (xhr.status !== 200) throw new Error("Envoi introuvable : recommencez.");
          return send(parseInt(xhr.getResponseHeader("Upload-Offset"), 10));
        }, resume);
      }

      request("POST", form.getAttribute("data-resumable"), headers).then(function (xhr) {
        if (xhr.status !== 201) throw new Error(errorMessage(xhr));
        location = xhr.getResponseHeader("Location");
        return send(0);
      }).then(function (docId) {
        say("Envoi terminé.");
        window.location.href = "/ged/documents/" + docId;
      }).catch(function (err) {
        fail(err.message);
      });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("form[data-resumable]"), enhance);
})();
