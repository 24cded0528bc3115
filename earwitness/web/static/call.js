/* Call page: stereo player (waveform of both channels, click to seek) with the transcript
   in sync (click a line to play from there, the current line highlighted), and QA
   overrides sent to PUT /api/qa/calls/{recording}/overrides/{rule}. */
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("i18n").textContent);
  var meta = JSON.parse(document.getElementById("call-meta").textContent);
  var audio = document.getElementById("audio");
  var canvas = document.getElementById("wave");
  var box = document.getElementById("transcript");
  var lines = [];
  var peaks = null;

  function esc(s) { var d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; }
  function mmss(s) { s = Math.max(0, Math.floor(s || 0)); return Math.floor(s / 60) + ":" + (s % 60 < 10 ? "0" : "") + (s % 60); }

  function playFrom(t) {
    if (!audio) { return; }
    audio.currentTime = t;
    var p = audio.play();
    if (p && p.catch) { p.catch(function () {}); }
  }

  /* two lanes: customer (channel 0) above, agent (channel 1) below; a mono file fills both */
  function computePeaks(buffer, columns) {
    var out = [];
    for (var ch = 0; ch < 2; ch++) {
      var data = buffer.getChannelData(Math.min(ch, buffer.numberOfChannels - 1));
      var step = Math.max(1, Math.floor(data.length / columns));
      var lane = new Float32Array(columns);
      for (var i = 0; i < columns; i++) {
        var max = 0;
        for (var j = i * step, end = Math.min(data.length, j + step); j < end; j += 4) {
          var v = Math.abs(data[j]); if (v > max) { max = v; }
        }
        lane[i] = max;
      }
      out.push(lane);
    }
    return out;
  }

  function draw() {
    if (!canvas) { return; }
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, half = h / 2;
    ctx.fillStyle = "#10161f"; ctx.fillRect(0, 0, w, h);
    var played = audio && audio.duration ? audio.currentTime / audio.duration : 0;
    if (peaks) {
      var colours = [["#f0a35e", "#7a5434"], ["#6aa6ff", "#34507a"]];
      for (var ch = 0; ch < 2; ch++) {
        var lane = peaks[ch], mid = half * ch + half / 2;
        for (var x = 0; x < lane.length; x++) {
          ctx.fillStyle = x / lane.length <= played ? colours[ch][0] : colours[ch][1];
          var a = Math.max(1, lane[x] * (half / 2 - 4) * 1.8);
          ctx.fillRect(x, mid - a, 1, 2 * a);
        }
      }
    }
    ctx.fillStyle = "#2a3544"; ctx.fillRect(0, half, w, 1);
    ctx.fillStyle = "#fff"; ctx.fillRect(Math.floor(played * w), 0, 2, h);
    ctx.font = "12px sans-serif"; ctx.fillStyle = "#cfd8e6";
    ctx.fillText(T.customer, 6, 14); ctx.fillText(T.agent, 6, half + 14);
  }

  function highlight() {
    if (!audio) { return; }
    var t = audio.currentTime, current = null;
    lines.forEach(function (l) { if (t >= l.start - 0.05 && t < l.end + 0.05) { current = l; } });
    lines.forEach(function (l) { l.el.classList.toggle("current", l === current); });
    if (current && !current.shown) {
      lines.forEach(function (l) { l.shown = false; });
      current.shown = true;
      var top = current.el.offsetTop - box.offsetTop;
      box.scrollTop = Math.max(0, top - box.clientHeight / 3);
    }
    document.getElementById("position").textContent = mmss(t) + " / " + mmss(audio.duration);
    draw();
  }

  function loadTranscript() {
    ew.api("GET", "/api/recordings/" + meta.recording_id + "/transcript?format=json").then(function (data) {
      var segs = (data.segments || []).slice().sort(function (a, b) { return a.start - b.start; });
      box.innerHTML = "";
      lines = segs.map(function (s) {
        var el = document.createElement("div");
        el.className = "line role-" + s.role + "-line";
        el.setAttribute("data-start", s.start);
        el.innerHTML = '<span class="muted">' + mmss(s.start) + '</span><span class="who role-' + esc(s.role) + '">' +
          esc(T[s.role] || s.role) + "</span><span>" + esc(s.text) + "</span>";
        el.addEventListener("click", function () { playFrom(s.start); });
        box.appendChild(el);
        return { start: s.start, end: s.end, el: el };
      });
      if (!lines.length) { box.innerHTML = '<p class="muted">' + esc(T["No transcript yet."]) + "</p>"; }
    }, function (err) {
      box.innerHTML = '<p class="muted">' + esc(err.status === 404 ? T["No transcript yet."] : err.detail) + "</p>";
    });
  }

  function loadWave() {
    fetch(audio.currentSrc || audio.src, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(r.status); }
      return r.arrayBuffer();
    }).then(function (bytes) {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      return new Ctx().decodeAudioData(bytes);
    }).then(function (buffer) { peaks = computePeaks(buffer, canvas.width); draw(); window.ewWaveDrawn = true; },
      function () { draw(); window.ewWaveDrawn = false; });
  }

  if (audio && meta.recording_id) {
    draw();
    loadTranscript();
    loadWave();
    document.getElementById("play").addEventListener("click", function () {
      if (audio.paused) { playFrom(audio.currentTime); } else { audio.pause(); }
    });
    audio.addEventListener("play", function () { document.getElementById("play").textContent = T.Pause; });
    audio.addEventListener("pause", function () { document.getElementById("play").textContent = T.Play; });
    audio.addEventListener("timeupdate", highlight);
    audio.addEventListener("seeked", highlight);
    canvas.addEventListener("click", function (ev) {
      var rect = canvas.getBoundingClientRect();
      if (audio.duration) { playFrom((ev.clientX - rect.left) / rect.width * audio.duration); }
    });
    var m = /t=([0-9.]+)/.exec(location.hash);
    if (m) { audio.addEventListener("loadedmetadata", function () { audio.currentTime = parseFloat(m[1]); highlight(); }, { once: true }); }
  }

  document.querySelectorAll("a.cite").forEach(function (a) {
    a.addEventListener("click", function (ev) { ev.preventDefault(); playFrom(parseFloat(a.getAttribute("data-t"))); });
  });

  document.querySelectorAll("form.override").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!ew.validate(form)) { return; }
      var url = "/api/qa/calls/" + meta.recording_id + "/overrides/" + encodeURIComponent(form.getAttribute("data-rule"));
      var rule = form.getAttribute("data-rule"), reason = form.reason.value.trim();
      ew.api("PUT", url, { status: form.status.value, reason: reason }).then(function () {
        ew.message(T.Saved, "ok");
        ew.reloadWhen("/api/qa/calls/" + meta.recording_id, function (card) {
          return (card.findings || []).some(function (f) { return f.rule_id === rule && f.override && f.override.reason === reason; });
        });
      }, function (err) { ew.showError(form, err); });
    });
  });
})();
