// gatehouse passkeys: runs the browser's WebAuthn ceremonies for forms marked with
// data-webauthn, and posts the answer as JSON in a hidden field. No inline scripts (CSP).
//   data-webauthn="create"        add a device (options in data-options)
//   data-webauthn="get"           second step (options in data-options)
//   data-webauthn="passwordless"  login page (options fetched from data-options-url),
//                                 also offered in the username field's autofill
//                                 (data-autofill)
"use strict";
(function () {
  function fromB64url(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }
  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: fromB64url(c.id) };
      if (c.transports) d.transports = c.transports;
      return d;
    });
  }
  function creationOptions(json) {
    var o = json.publicKey;
    o.challenge = fromB64url(o.challenge);
    o.user.id = fromB64url(o.user.id);
    o.excludeCredentials = descriptors(o.excludeCredentials);
    return o;
  }
  function requestOptions(json) {
    var o = json.publicKey;
    o.challenge = fromB64url(o.challenge);
    o.allowCredentials = descriptors(o.allowCredentials);
    return o;
  }
  function created(cred) {
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(cred.response.attestationObject),
        clientDataJSON: toB64url(cred.response.clientDataJSON),
        transports: cred.response.getTransports ? cred.response.getTransports() : undefined
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    });
  }
  function asserted(cred) {
    var r = cred.response;
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    });
  }
  function say(form, text) {
    var box = form.querySelector("[data-webauthn-message]");
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }
  function failure(form, err) {
    if (err && err.name === "AbortError") return;
    var key = err && err.name === "InvalidStateError" ? "errorExists" : "errorCancelled";
    say(form, form.dataset[key] || String(err));
    var button = form.querySelector("button[data-webauthn-start]");
    if (button) button.disabled = false;
  }
  function submitWith(form, answer) {
    form.querySelector("input[data-webauthn-answer]").value = answer;
    form.submit();
  }
  function fetchOptions(form) {
    var body = new URLSearchParams();
    body.set("csrf", form.querySelector("input[name=csrf]").value);
    return fetch(form.dataset.optionsUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: body.toString()
    }).then(function (r) {
      if (!r.ok) throw new Error("options " + r.status);
      return r.json();
    }).then(function (json) {
      form.querySelector("input[name=ceremony]").value = json.ceremony;
      return json;
    });
  }

  var supported = !!(window.PublicKeyCredential && navigator.credentials);
  var forms = document.querySelectorAll("form[data-webauthn]");
  var conditional = null;

  Array.prototype.forEach.call(forms, function (form) {
    var button = form.querySelector("button[data-webauthn-start]");
    if (!supported) {
      if (button) button.hidden = true;
      say(form, form.dataset.errorUnsupported);
      return;
    }
    if (button) button.hidden = false;
    var kind = form.dataset.webauthn;
    form.addEventListener("submit", function (event) {
      if (!form.querySelector("input[data-webauthn-answer]").value) event.preventDefault();
    });
    if (!button) return;
    button.addEventListener("click", function (event) {
      event.preventDefault();
      button.disabled = true;
      say(form, "");
      if (kind === "create") {
        navigator.credentials
          .create({ publicKey: creationOptions(JSON.parse(form.dataset.options)) })
          .then(function (cred) { submitWith(form, created(cred)); }, function (e) { failure(form, e); });
      } else if (kind === "get") {
        navigator.credentials
          .get({ publicKey: requestOptions(JSON.parse(form.dataset.options)) })
          .then(function (cred) { submitWith(form, asserted(cred)); }, function (e) { failure(form, e); });
      } else if (kind === "passwordless") {
        if (conditional) conditional.abort();
        fetchOptions(form)
          .then(function (json) { return navigator.credentials.get({ publicKey: requestOptions(json) }); })
          .then(function (cred) { submitWith(form, asserted(cred)); }, function (e) { failure(form, e); });
      }
    });
    // Autofill is not offered again right after a refused attempt (no retry loops).
    if (kind === "passwordless" && form.hasAttribute("data-autofill") &&
        window.PublicKeyCredential.isConditionalMediationAvailable) {
      window.PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available) return;
        conditional = new AbortController();
        var signal = conditional.signal;
        fetchOptions(form)
          .then(function (json) {
            return navigator.credentials.get({
              publicKey: requestOptions(json),
              mediation: "conditional",
              signal: signal
            });
          })
          .then(function (cred) { submitWith(form, asserted(cred)); }, function () {});
      });
    }
  });
})();
