/* Search: "play from here" plays the hit's recording from the hit's start, in the page. */
(function () {
  "use strict";
  var audio = document.getElementById("hit-audio");
  document.querySelectorAll("button.play-hit").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var src = btn.getAttribute("data-src"), at = parseFloat(btn.getAttribute("data-t"));
      function go() { audio.currentTime = at; audio.play().catch(function (e) { ew.message(String(e)); }); }
      if (audio.getAttribute("src") !== src) {
        audio.setAttribute("src", src);
        audio.addEventListener("loadedmetadata", go, { once: true });
        audio.load();
      } else { go(); }
      document.querySelectorAll("button.play-hit").forEach(function (b) { b.classList.toggle("playing", b === btn); });
    });
  });
  if (audio) { audio.addEventListener("error", function () { ew.message("audio: " + (audio.error && audio.error.message || audio.error && audio.error.code)); }); }
})();
