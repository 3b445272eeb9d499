// The dashboard's only script (every page works without it):
// - live views refresh their #live region every 30 s, pausable, without
//   moving anything else on the page;
// - the sign-in page goes straight on when the browser already has a
//   session (a link opened from a mail client arrives without the
//   SameSite=Strict cookie; this same-site request carries it).
(function () {
  'use strict';
  var signin = document.querySelector('form[data-signin-next]');
  if (signin) {
    fetch('/signin/status', { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (s) { if (s.signed_in) location.replace(signin.getAttribute('data-signin-next')); })
      .catch(function () {});
    return;
  }
  var live = document.getElementById('live');
  if (!live || !live.hasAttribute('data-live')) return;
  var every = Number(live.getAttribute('data-live')) * 1000;
  var paused = false;
  var button = document.getElementById('live-toggle');
  if (button) {
    button.addEventListener('click', function () {
      paused = !paused;
      button.setAttribute('aria-pressed', String(paused));
      button.textContent = paused ? 'Resume live updates' : 'Pause live updates';
    });
  }
  function refresh() {
    // Someone reading the numbers behind a chart keeps them.
    if (paused || document.hidden || live.querySelector('details[open]')) return;
    fetch(location.href, { credentials: 'same-origin', headers: { 'X-Live': '1' } })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.text();
      })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, 'text/html').getElementById('live');
        if (!next) return;
        // Keep the region at least as tall as it was while swapping: no shift below it.
        live.style.minHeight = live.offsetHeight + 'px';
        live.innerHTML = next.innerHTML;
        requestAnimationFrame(function () { live.style.minHeight = ''; });
      })
      .catch(function () { /* try again at the next tick */ });
  }
  setInterval(refresh, every);
})();
