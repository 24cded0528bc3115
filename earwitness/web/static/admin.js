/* Admin: users and API keys through /api/users and /api/keys; field errors from the API's
   422 answers are shown next to their fields. */
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("i18n").textContent);
  function values(form) {
    var out = {};
    new FormData(form).forEach(function (v, k) { v = String(v).trim(); if (v !== "") { out[k] = v; } });
    return out;
  }
  var addUser = document.getElementById("add-user");
  addUser.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!ew.validate(addUser)) { return; }
    var body = values(addUser);
    ew.api("POST", "/api/users", body).then(function () {
      ew.reloadWhen("/api/users", function (users) { return users.some(function (u) { return u.username === body.username; }); });
    }, function (err) { ew.showError(addUser, err); });
  });
  var addKey = document.getElementById("add-key");
  addKey.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!ew.validate(addKey)) { return; }
    ew.api("POST", "/api/keys", values(addKey)).then(function (r) {
      var out = document.getElementById("new-key");
      out.textContent = T["The key is shown once:"] + " " + r.key;
      out.hidden = false;
    }, function (err) { ew.showError(addKey, err); });
  });
  document.querySelectorAll("button.revoke").forEach(function (b) {
    b.addEventListener("click", function () {
      var id = Number(b.getAttribute("data-key"));
      ew.api("DELETE", "/api/keys/" + id).then(function () {
        ew.reloadWhen("/api/keys", function (keys) { return keys.some(function (k) { return k.id === id && k.revoked_at; }); });
      }, function (err) { ew.showError(null, err); });
    });
  });
  document.querySelectorAll("button.toggle-user").forEach(function (b) {
    b.addEventListener("click", function () {
      var id = Number(b.getAttribute("data-user")), active = b.getAttribute("data-active") === "true";
      ew.api("PATCH", "/api/users/" + id, { active: active }).then(function () {
        ew.reloadWhen("/api/users", function (users) { return users.some(function (u) { return u.id === id && u.active === active; }); });
      }, function (err) { ew.showError(null, err); });
    });
  });
})();
