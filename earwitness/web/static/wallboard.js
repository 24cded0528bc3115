/* Wallboard: renders /api/live snapshots as they arrive over /api/live/stream (SSE) and
   today's service level per queue from /api/sla. No figure is computed here that the
   server does not send, except the seconds ticking between two snapshots. */
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("i18n").textContent);
  var zone = JSON.parse(document.getElementById("zone").textContent);
  var last = JSON.parse(document.getElementById("snapshot").textContent);
  var lastAt = Date.now();
  /* service-level colours: green at or above 80 % within target, amber from 60 %, red below */
  var GREEN = 80, AMBER = 60;

  function $(sel) { return document.querySelector(sel); }
  function set(key, text) { var el = $('[data-k="' + key + '"]'); if (el) { el.textContent = text; } }
  function esc(s) { var d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; }
  function dur(s) {
    if (s == null) { return "–"; }
    s = Math.round(s);
    var m = Math.floor(s / 60), r = s % 60;
    return m ? m + ":" + (r < 10 ? "0" : "") + r : r + " s";
  }
  function periodS(snap) {
    var p = (snap.target && snap.target.cadence && snap.target.cadence.pattern_ms) || [1000, 4000];
    return p.reduce(function (a, b) { return a + b; }, 0) / 1000;
  }
  function rings(wait, snap) { return wait <= 0 ? 0 : Math.ceil(wait / periodS(snap)); }
  function targetText(target) {
    if (!target) { return ""; }
    var parts = [];
    if (target.rings != null) { parts.push(target.rings + " " + T.rings); }
    if (target.seconds != null) { parts.push(target.seconds + " " + T.seconds); }
    return T.Target + ": " + T.within + " " + parts.join(" / ");
  }
  function overTarget(wait, snap) {
    var t = snap.target || {};
    return (t.rings != null && rings(wait, snap) > t.rings) || (t.seconds != null && wait > t.seconds);
  }

  function render(snap) {
    if (!snap) { return; }
    if (window.ewFirstRender === undefined) {
      requestAnimationFrame(function () { window.ewFirstRender = performance.now(); });  /* benchmarks/bench_web.py */
    }
    var drift = (Date.now() - lastAt) / 1000;
    var waiting = (snap.waiting || []).map(function (w) { return Object.assign({}, w, { wait: w.wait_s + drift }); });
    waiting.sort(function (a, b) { return b.wait - a.wait; });
    var over = waiting.filter(function (w) { return overTarget(w.wait, snap); }).length;
    set("calls_waiting", snap.calls_waiting);
    var byQueue = Object.keys(snap.waiting_by_queue || {}).map(function (q) { return q + " " + snap.waiting_by_queue[q]; });
    set("waiting_by_queue", byQueue.join(" · "));
    var longest = waiting.length ? waiting[0].wait : null;
    set("longest_wait", dur(longest));
    set("longest_rings", longest == null ? "" : rings(longest, snap) + " " + T.rings);
    set("waiting_over_target", over);
    set("target", targetText(snap.target));
    set("calls_talking", snap.calls_talking);
    var states = snap.agents_by_state || {};
    set("agents_by_state", Object.keys(states).map(function (k) { return (T.states[k] || k) + " " + states[k]; }).join(" · "));
    $("#tile-over").classList.toggle("alert", over > 0);
    document.title = (over > 0 ? "⚠ " + over + " · " : "") + document.title.replace(/^⚠ \d+ · /, "");
    var rows = waiting.map(function (w) {
      return '<tr class="' + (overTarget(w.wait, snap) ? "over" : "") + '"><td>' + esc(w.caller || "–") +
        "</td><td>" + esc(w.queue || "–") + '</td><td class="num">' + dur(w.wait) +
        '</td><td class="num">' + rings(w.wait, snap) + "</td></tr>";
    });
    $("#waiting tbody").innerHTML = rows.join("") || '<tr><td colspan="4" class="muted">' + esc(T["Nobody is waiting."]) + "</td></tr>";
    var members = (snap.members || []).map(function (m) {
      var since = m.since ? new Date(m.since).toLocaleTimeString([], { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }) : "–";
      var talk = (m.today_s || {}).in_call;
      return "<tr><td>" + esc(m.agent) + '</td><td class="state state-' + esc(m.state) + '">' + esc(T.states[m.state] || m.state) +
        "</td><td>" + esc(m.reason || "") + '</td><td class="num">' + since + '</td><td class="num">' + dur(talk) + "</td></tr>";
    });
    $("#members tbody").innerHTML = members.join("") || '<tr><td colspan="5" class="muted">' + esc(T["No queue members reported yet."]) + "</td></tr>";
  }

  function loadQueues() {
    ew.api("GET", "/api/sla?group_by=queue&from=today").then(function (data) {
      var html = (data.groups || []).map(function (g) {
        var pct = g.service_level_pct;
        var rag = pct == null ? "" : pct >= GREEN ? "rag-green" : pct >= AMBER ? "rag-amber" : "rag-red";
        return '<div class="queue-sl ' + rag + '"><div class="label"><b>' + esc(g.key) + "</b> · " + esc(targetText(g.target)) +
          '</div><div class="pct">' + (pct == null ? "–" : pct.toFixed(0) + " %") + '</div><div class="sub">' +
          esc(T.Offered) + " " + g.offered + " · " + esc(T.Answered) + " " + g.answered + " · " +
          esc(T.Abandoned) + " " + g.abandoned + "</div></div>";
      });
      $("#queues").innerHTML = html.join("") || '<p class="muted">' + esc(T["No calls in this period."]) + "</p>";
    }, function (err) { ew.showError(null, err); });
  }

  function live(on) {
    $("#live-dot").classList.toggle("off", !on);
    $("#live-state").textContent = on ? T.Live : T["Reconnecting…"];
  }

  render(last);
  loadQueues();
  setInterval(function () { render(last); }, 1000);
  setInterval(loadQueues, 30000);
  var source = new EventSource("/api/live/stream?interval_s=1");
  source.addEventListener("snapshot", function (ev) {
    var snap = JSON.parse(ev.data);
    var changed = !last || snap.calls_waiting !== last.calls_waiting || snap.calls_talking !== last.calls_talking;
    last = snap; lastAt = Date.now();
    live(true);
    render(snap);
    if (changed) { loadQueues(); }
  });
  source.onerror = function () { live(false); };
})();
