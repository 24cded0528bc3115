/* Case page: the GPS track drawn offline on a canvas (stops, gaps, arrival, destination,
   scale bar) — or on Leaflet when an admin set a tile URL — fact review and evidence
   verification through the JSON API. */
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("i18n").textContent);
  var tracks = JSON.parse(document.getElementById("tracks").textContent) || [];
  var COL = { line: "#1f5fae", stop: "#d98c00", gap: "#c62828", arrival: "#2e7d32", dest: "#5b2d9e" };

  function niceDistance(m) {
    var p = Math.pow(10, Math.floor(Math.log10(m)));
    var n = m / p;
    return (n >= 5 ? 5 : n >= 2 ? 2 : 1) * p;
  }

  /* equirectangular projection around the track's mid-latitude: fine at city scale */
  function drawCanvas(canvas) {
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, pad = 40;
    var pts = [], extra = [];
    tracks.forEach(function (tr) {
      tr.points.forEach(function (p) { pts.push(p); });
      var a = tr.analysis || {};
      if (a.params && a.params.destination) { extra.push([a.params.destination.lat, a.params.destination.lon]); }
    });
    if (!pts.length) { return; }
    var all = pts.concat(extra);
    var lats = all.map(function (p) { return p[0]; }), lons = all.map(function (p) { return p[1]; });
    var minLat = Math.min.apply(null, lats), maxLat = Math.max.apply(null, lats);
    var minLon = Math.min.apply(null, lons), maxLon = Math.max.apply(null, lons);
    var k = Math.cos((minLat + maxLat) / 2 * Math.PI / 180);
    var mPerDegLat = 111320;
    var spanX = Math.max(1e-6, (maxLon - minLon) * k), spanY = Math.max(1e-6, maxLat - minLat);
    var scale = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);  /* px per degree of latitude */
    var ox = (w - spanX * scale) / 2, oy = (h - spanY * scale) / 2;
    function xy(lat, lon) { return [ox + (lon - minLon) * k * scale, h - oy - (lat - minLat) * scale]; }
    ctx.fillStyle = "#fbfcfd"; ctx.fillRect(0, 0, w, h);
    tracks.forEach(function (tr) {
      var a = tr.analysis || {}, P = tr.points;
      var gapStarts = {};
      (a.gaps || []).forEach(function (g) { gapStarts[g.from_index] = g.to_index; });
      ctx.lineWidth = 3; ctx.strokeStyle = COL.line; ctx.setLineDash([]);
      ctx.beginPath();
      P.forEach(function (p, i) {
        var q = xy(p[0], p[1]);
        if (i === 0 || gapStarts[i - 1] !== undefined) { ctx.moveTo(q[0], q[1]); } else { ctx.lineTo(q[0], q[1]); }
      });
      ctx.stroke();
      (a.gaps || []).forEach(function (g) {
        var p1 = P[g.from_index], p2 = P[g.to_index];
        if (!p1 || !p2) { return; }
        var q1 = xy(p1[0], p1[1]), q2 = xy(p2[0], p2[1]);
        ctx.strokeStyle = COL.gap; ctx.setLineDash([6, 5]); ctx.lineWidth = 3;
        ctx.beginPath(); ctx.moveTo(q1[0], q1[1]); ctx.lineTo(q2[0], q2[1]); ctx.stroke();
        ctx.setLineDash([]);
      });
      ctx.font = "13px sans-serif";
      (a.stops || []).forEach(function (s) {
        var q = xy(s.lat, s.lon);
        ctx.fillStyle = COL.stop; ctx.beginPath(); ctx.arc(q[0], q[1], 7, 0, 2 * Math.PI); ctx.fill();
        ctx.fillStyle = "#5a3a00";
        ctx.fillText(Math.round(s.minutes) + " min" + (s.place ? " · " + (s.place.name || s.place) : ""), q[0] + 10, q[1] - 8);
      });
      if (a.params && a.params.destination) {
        var d = xy(a.params.destination.lat, a.params.destination.lon);
        var r = Math.max(6, (a.params.geofence_radius_m || 200) / mPerDegLat * scale);
        ctx.strokeStyle = COL.dest; ctx.lineWidth = 2; ctx.beginPath(); ctx.arc(d[0], d[1], r, 0, 2 * Math.PI); ctx.stroke();
        ctx.fillStyle = COL.dest; ctx.fillText(a.params.destination.name || "", d[0] + r + 4, d[1] + 4);
      }
      if (a.arrival && a.arrival.reached && P[a.arrival.index]) {
        var ar = P[a.arrival.index], qa = xy(ar[0], ar[1]);
        ctx.fillStyle = COL.arrival; ctx.beginPath(); ctx.arc(qa[0], qa[1], 8, 0, 2 * Math.PI); ctx.fill();
        ctx.fillStyle = "#fff"; ctx.fillText("✓", qa[0] - 4, qa[1] + 4);
      }
      var s0 = xy(P[0][0], P[0][1]);
      ctx.fillStyle = "#18212e"; ctx.beginPath(); ctx.arc(s0[0], s0[1], 5, 0, 2 * Math.PI); ctx.fill();
      ctx.fillText("start", s0[0] + 8, s0[1] + 14);
    });
    /* scale bar: a round distance about a fifth of the width */
    var metresPerPx = mPerDegLat / scale;
    var metres = niceDistance(metresPerPx * w / 5);
    var px = metres / metresPerPx;
    ctx.fillStyle = "#18212e"; ctx.fillRect(pad, h - 22, px, 4);
    ctx.fillRect(pad, h - 28, 2, 10); ctx.fillRect(pad + px - 2, h - 28, 2, 10);
    ctx.font = "12px sans-serif";
    ctx.fillText(metres >= 1000 ? metres / 1000 + " km" : metres + " m", pad + px + 8, h - 17);
    ctx.fillText("N ↑", w - 40, 20);
  }

  function drawLeaflet(el) {
    var map = L.map(el);
    L.tileLayer(el.getAttribute("data-tiles"), { maxZoom: 19 }).addTo(map);
    var bounds = [];
    tracks.forEach(function (tr) {
      var line = tr.points.map(function (p) { return [p[0], p[1]]; });
      bounds = bounds.concat(line);
      L.polyline(line, { color: COL.line, weight: 4 }).addTo(map);
      var a = tr.analysis || {};
      (a.stops || []).forEach(function (s) {
        L.circleMarker([s.lat, s.lon], { color: COL.stop, radius: 8 }).bindTooltip(Math.round(s.minutes) + " min").addTo(map);
      });
      (a.gaps || []).forEach(function (g) {
        var p1 = tr.points[g.from_index], p2 = tr.points[g.to_index];
        if (p1 && p2) { L.polyline([[p1[0], p1[1]], [p2[0], p2[1]]], { color: COL.gap, dashArray: "6 5" }).addTo(map); }
      });
      if (a.arrival && a.arrival.reached && tr.points[a.arrival.index]) {
        var ar = tr.points[a.arrival.index];
        L.circleMarker([ar[0], ar[1]], { color: COL.arrival, radius: 9 }).addTo(map);
      }
    });
    if (bounds.length) { map.fitBounds(bounds); }
    L.control.scale().addTo(map);
  }

  var canvas = document.getElementById("trackmap");
  if (canvas) { drawCanvas(canvas); }
  var tiles = document.getElementById("tilemap");
  if (tiles && window.L) { drawLeaflet(tiles); }

  document.querySelectorAll("button.verify").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var id = btn.getAttribute("data-evidence");
      var out = document.querySelector('.verdict[data-evidence="' + id + '"]');
      ew.api("POST", "/api/evidence/" + id + "/verify").then(function (r) {
        out.innerHTML = r.ok ? '<span class="badge green">' + T.Verified + "</span>" :
          '<span class="badge red">' + T.TAMPERED + "</span> " + (r.problems || []).map(function (p) { return p.line; }).join("; ");
      }, function (err) { ew.showError(null, err); });
    });
  });

  document.querySelectorAll("form.fact").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var status = ev.submitter ? ev.submitter.value : "confirmed";
      ew.clearErrors(form);
      var body = { status: status };
      if (status === "edited") {
        if (!form.value.value.trim()) { ew.fieldError(form, "value", T.required); return; }
        body.value = form.value.value.trim();
      }
      var url = "/api/cases/" + form.getAttribute("data-case") + "/facts/" + form.getAttribute("data-fact");
      var caseId = form.getAttribute("data-case"), factId = Number(form.getAttribute("data-fact"));
      ew.api("POST", url, body).then(function () {
        ew.reloadWhen("/api/cases/" + caseId, function (c) {
          return ((c.facts || {}).items || []).some(function (f) { return f.id === factId && f.status === status; });
        });
      }, function (err) { ew.showError(form, err); });
    });
  });

  var refresh = document.getElementById("facts-refresh");
  if (refresh) {
    refresh.addEventListener("click", function () {
      ew.api("POST", "/api/cases/" + refresh.getAttribute("data-case") + "/facts/refresh").then(function () { location.reload(); },
        function (err) { ew.showError(null, err); });
    });
  }
})();
