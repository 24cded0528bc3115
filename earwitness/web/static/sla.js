/* SLA report: the form drives GET /api/sla (the same figures as the CLI and the export);
   this only draws them. Dates are local days in the configured zone. */
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("i18n").textContent);
  var zone = JSON.parse(document.getElementById("zone").textContent);
  var form = document.getElementById("sla-form");
  var charts = [];

  function esc(s) { var d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; }
  function num(v, digits) { return v == null ? "–" : Number(v).toFixed(digits == null ? 1 : digits); }
  function localDate(d) {
    return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
  }
  function targetText(t, unit) {
    if (!t) { return ""; }
    var period = ((t.cadence && t.cadence.pattern_ms) || [1000, 4000]).reduce(function (a, b) { return a + b; }, 0) / 1000;
    if (unit === "seconds") {
      var s = t.seconds != null ? t.seconds : (t.rings != null ? t.rings * period : null);
      return s == null ? "" : "≤ " + s + " " + T.seconds;
    }
    var r = t.rings != null ? t.rings : (t.seconds != null ? Math.ceil(t.seconds / period) : null);
    return r == null ? "" : "≤ " + r + " " + T.rings + " (" + (t.cadence ? t.cadence.name : "") + ")";
  }
  function waitText(s, t, unit) {
    if (s == null) { return "–"; }
    if (unit === "seconds") { return num(s) + " s"; }
    var period = ((t && t.cadence && t.cadence.pattern_ms) || [1000, 4000]).reduce(function (a, b) { return a + b; }, 0) / 1000;
    return Math.ceil(s / period) + " " + T.rings + " (" + num(s, 0) + " s)";
  }

  function query() {
    var p = new URLSearchParams();
    p.set("group_by", form.group_by.value);
    p.set("from", form.from.value);  /* local days: the API reads them in the configured zone */
    p.set("to", form.to.value);
    if (form.queue.value.trim()) { p.set("queue", form.queue.value.trim()); }
    if (form.agent.value.trim()) { p.set("agent", form.agent.value.trim()); }
    return p;
  }

  function draw(data) {
    var unit = form.unit.value;
    var groups = data.groups || [];
    var rows = groups.map(function (g) {
      return "<tr><td>" + esc(g.key) + "</td><td>" + esc(targetText(g.target, unit)) + '</td><td class="num">' + g.offered +
        '</td><td class="num">' + g.answered + '</td><td class="num">' + g.answered_within_target +
        '</td><td class="num">' + num(g.service_level_pct) + ' %</td><td class="num">' + esc(waitText(g.asa_s, g.target, unit)) +
        '</td><td class="num">' + esc(waitText(g.longest_wait_s, g.target, unit)) + '</td><td class="num">' + g.abandoned +
        '</td><td class="num">' + num(g.abandon_rate_pct) + ' %</td><td class="num">' + (g.rona_count || 0) + "</td></tr>";
    });
    document.querySelector("#sla-table tbody").innerHTML = rows.join("") ||
      '<tr><td colspan="11" class="muted">' + esc(T["No calls in this period."]) + "</td></tr>";
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    var box = document.getElementById("chart-sl");
    var width = Math.max(280, box.clientWidth - 10);
    var xs = groups.map(function (_, i) { return i; });
    var labels = groups.map(function (g) { return g.key; });
    var axis = { splits: function () { return xs; }, values: function (u, ticks) { return ticks.map(function (i) { return labels[i] || ""; }); } };
    var bars = uPlot.paths.bars({ size: [0.6, 60] });
    charts.push(new uPlot({ width: width, height: 240, legend: { show: false },
      scales: { x: { time: false, range: [-0.6, Math.max(0.6, xs.length - 0.4)] }, y: { range: [0, 100] } },
      axes: [axis, {}],
      series: [{}, { label: T["Service level"], fill: "rgba(31,95,174,.35)", stroke: "#1f5fae", paths: bars, points: { show: false } }]
    }, [xs, groups.map(function (g) { return g.service_level_pct; })], box));
    var hist = {};
    groups.forEach(function (g) { Object.keys(g.rings_histogram || {}).forEach(function (k) { hist[k] = (hist[k] || 0) + g.rings_histogram[k]; }); });
    var most = Math.max.apply(null, [0].concat(Object.keys(hist).map(Number)));
    var keys = [];
    for (var k = 0; k <= most; k++) { keys.push(k); }
    var rbox = document.getElementById("chart-rings");
    charts.push(new uPlot({ width: width, height: 240, legend: { show: false },
      scales: { x: { time: false, range: [-0.6, most + 0.6] } },
      axes: [{ label: T.Rings, splits: function () { return keys; } }, { splits: function (u, i, lo, hi) {
        var out = [], step = Math.max(1, Math.ceil(hi / 5)); for (var v = 0; v <= hi; v += step) { out.push(v); } return out; } }],
      series: [{}, { label: T.Answered, fill: "rgba(46,125,50,.35)", stroke: "#2e7d32", paths: bars, points: { show: false } }]
    }, [keys, keys.map(function (k) { return hist[k] || 0; })], rbox));
  }

  function load(ev) {
    if (ev) { ev.preventDefault(); }
    if (!ew.validate(form)) { return; }
    if (form.from.value > form.to.value) { ew.fieldError(form, "to", T["the start must be before the end"]); return; }
    var p = query();
    history.replaceState(null, "", "?" + new URLSearchParams(new FormData(form)).toString());
    ["csv", "xlsx"].forEach(function (f) {
      var q = new URLSearchParams(p); q.set("format", f);
      document.getElementById(f).href = "/api/sla?" + q.toString();
    });
    ew.message("");
    ew.api("GET", "/api/sla?" + p.toString()).then(draw, function (err) { ew.showError(form, err); });
  }

  var params = new URLSearchParams(location.search);
  var today = localDate(new Date());
  var weekAgo = localDate(new Date(Date.now() - 6 * 86400000));
  form.from.value = params.get("from") || weekAgo;
  form.to.value = params.get("to") || today;
  ["group_by", "queue", "agent", "unit"].forEach(function (k) { if (params.get(k)) { form[k].value = params.get(k); } });
  form.addEventListener("submit", load);
  form.unit.addEventListener("change", load);
  load();
})();
