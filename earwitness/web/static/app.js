/* earwitness: what every page shares — API calls with the CSRF token, errors shown to
   people (never raw JSON), form checks with the message next to the field, language. */
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var lang = document.documentElement.lang.indexOf("zh") === 0 ? "zh" : "en";
  var ZH = {
    "required": "必填", "Saved": "已保存", "Something went wrong": "出错了",
    "not a number": "不是数字", "too short": "太短", "The server did not answer.": "服务器无响应。"
  };
  function t(text) { return lang === "zh" && ZH[text] ? ZH[text] : text; }

  function ApiError(status, detail, errors) {
    this.status = status; this.detail = detail; this.errors = errors || [];
  }

  /* fetch JSON from the API; problem+json answers become ApiError with their detail */
  function api(method, url, body) {
    var opts = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") { opts.headers["X-CSRF-Token"] = csrf; }
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      var type = r.headers.get("content-type") || "";
      var parsed = type.indexOf("json") >= 0 ? r.json() : r.text();
      return parsed.then(function (data) {
        if (!r.ok) {
          var detail = (data && data.detail) || (r.status + " " + r.statusText);
          throw new ApiError(r.status, detail, data && data.errors);
        }
        return data;
      });
    }, function () { throw new ApiError(0, t("The server did not answer.")); });
  }

  function message(text, kind) {
    var box = document.getElementById("message");
    if (!box) { return; }
    box.textContent = text;
    box.className = "message " + (kind || "error");
    box.hidden = !text;
    if (text) { box.scrollIntoView({ block: "nearest" }); }
  }

  function fieldError(form, name, text) {
    var slot = form.querySelector('.field-error[data-for="' + name + '"]');
    var input = form.elements[name];
    if (!slot && input) {
      slot = document.createElement("span");
      slot.className = "field-error";
      slot.setAttribute("data-for", name);
      (input.closest("label") || input).insertAdjacentElement("afterend", slot);
    }
    if (slot) { slot.textContent = text || ""; }
    if (input && input.setAttribute) {
      if (text) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
    }
    return !!slot;
  }

  function clearErrors(form) {
    form.querySelectorAll(".field-error").forEach(function (el) { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  /* the browser's own constraint checks, shown next to each field */
  function validate(form) {
    clearErrors(form);
    var ok = true;
    Array.prototype.forEach.call(form.elements, function (input) {
      if (!input.name || !input.willValidate) { return; }
      var text = "";
      if (!input.checkValidity()) {
        text = input.validity.valueMissing ? t("required") : input.validationMessage;
      } else if (input.minLength > 0 && input.value && input.value.length < input.minLength) {
        text = t("too short") + " (≥ " + input.minLength + ")";  /* typed by a script: no tooShort */
      }
      if (!text) { return; }
      ok = false;
      fieldError(form, input.name, text);
    });
    return ok;
  }

  /* an API error: per-field messages next to their fields, the rest as the page message */
  function showError(form, err) {
    if (!(err instanceof ApiError)) { message(t("Something went wrong") + ": " + err); return; }
    var placed = false;
    (err.errors || []).forEach(function (e) {
      var loc = e.loc || [];
      var name = loc[loc.length - 1];
      if (form && name && form.elements[name]) { placed = fieldError(form, name, e.msg) || placed; }
    });
    if (!placed) { message(err.detail); }
  }

  /* After a write, wait until a read shows it (the API may commit just after answering),
     then reload: the page is rendered from what is stored, never from what was sent. */
  function reloadWhen(url, shows) {
    var until = Date.now() + 5000;
    function poll() {
      api("GET", url).then(function (data) {
        if (shows(data) || Date.now() > until) { location.reload(); } else { setTimeout(poll, 150); }
      }, function () { location.reload(); });
    }
    poll();
  }

  document.addEventListener("click", function (ev) {
    var link = ev.target.closest("[data-lang]");
    if (!link) { return; }
    ev.preventDefault();
    document.cookie = "ew_lang=" + link.getAttribute("data-lang") + "; path=/; max-age=31536000; samesite=lax";
    location.reload();
  });

  /* forms marked data-validate get the same checks before a normal submit */
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.hasAttribute("data-validate") && !validate(form)) { ev.preventDefault(); }
  }, true);

  window.ew = { api: api, message: message, validate: validate, showError: showError,
    fieldError: fieldError, clearErrors: clearErrors, t: t, lang: lang, ApiError: ApiError,
    reloadWhen: reloadWhen };
})();
