// The web-vitals reference, injected by the test harness into every fixture
// page after web-vitals' IIFE build. Every report (reportAllChanges) is kept in
// order in window.__ref.reports as {name, value, navigationType, url}:
// - `reports`: the standard web-vitals metrics of the page (and of a bfcache restore);
// - `soft`: INP and CLS with `reportSoftNavs`, so each SPA route (a Chromium soft
//   navigation) has its own values, the per-route reference for our route views.
(function () {
  var ref = (window.__ref = { reports: [], soft: [] });
  var keep = function (list) {
    return function (m) {
      list.push({ name: m.name, value: m.value, navigationType: m.navigationType, url: m.navigationURL });
    };
  };
  ['onLCP', 'onCLS', 'onINP', 'onFCP', 'onTTFB'].forEach(function (fn) {
    webVitals[fn](keep(ref.reports), { reportAllChanges: true });
  });
  ['onINP', 'onCLS'].forEach(function (fn) {
    webVitals[fn](keep(ref.soft), { reportAllChanges: true, reportSoftNavs: true });
  });
  /**
   * The last value web-vitals reported for `name` (optionally for one navigation
   * type, and for one navigation URL: a soft navigation's URL tells its route).
   */
  ref.last = function (name, navigationType, list, url) {
    var found;
    (list || ref.reports).forEach(function (r) {
      if (r.name === name && (!navigationType || r.navigationType === navigationType) && (!url || r.url === url)) {
        found = r.value;
      }
    });
    return found;
  };
})();
