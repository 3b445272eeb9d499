/*
 * vitalsign web snippet: measures LCP, CLS, INP, FCP and TTFB the way Google's
 * web-vitals library does, and sends them to the collector as one text/plain
 * JSON beacon per flush. Readable source; `npm run build` minifies it into
 * dist/vitalsign.min.js, the exact file the collector serves at /v1/snippet.js.
 *
 *   <script async src="https://COLLECTOR/v1/snippet.js" data-site="KEY"
 *           data-sample="0.5" data-endpoint="https://COLLECTOR/v1/rum"></script>
 *
 * Without data-site (as when a probe injects it before the document exists)
 * it runs in lab mode: it measures the same way and never sends. Either way
 * `window.__vitalsign` exposes { version, read(), flush() } for probes and tests.
 *
 * It must never throw into the host page: every entry point is wrapped.
 */
(function () {
  var VERSION = '0.1.0';
  var w = window;
  var d = document;
  if (w.__vitalsign) return;
  var perf = w.performance;

  // [good bound, poor bound] per metric: a value on a bound is the better class.
  var BOUNDS = { LCP: [2500, 4000], CLS: [0.1, 0.25], INP: [200, 500], FCP: [1800, 3000], TTFB: [800, 1800] };
  // Event-timing entries shorter than this never reach the observer (web-vitals uses 40 ms too).
  var DURATION_THRESHOLD = 40;
  var MAX_INTERACTIONS = 10;

  var script = d.currentScript;
  var attr = function (name) { return script && script.getAttribute(name); };
  var site = attr('data-site');
  var keepQuery = attr('data-query') === '1';
  var sampleRate = parseFloat(attr('data-sample'));
  if (!(sampleRate >= 0 && sampleRate <= 1)) sampleRate = 1;
  var endpoint = attr('data-endpoint');
  try {
    if (!endpoint && site) endpoint = new URL('/v1/rum', script.src).href;
  } catch (e) {}

  var safe = function (fn) {
    return function (a, b) {
      try { return fn(a, b); } catch (e) {}
    };
  };
  var on = function (target, type, fn, once) {
    target.addEventListener(type, safe(fn), { capture: true, once: !!once });
  };
  var observe = function (type, fn, extra) {
    try {
      if (PerformanceObserver.supportedEntryTypes.indexOf(type) < 0) return;
      var po = new PerformanceObserver(safe(function (list) { fn(list.getEntries()); }));
      var opts = { type: type, buffered: true };
      for (var k in extra) opts[k] = extra[k];
      po.observe(opts);
      return po;
    } catch (e) {}
  };

  var navEntry = function () {
    var nav = perf && perf.getEntriesByType && perf.getEntriesByType('navigation')[0];
    // Sanity checks as in web-vitals: a responseStart of 0 or in the future is a broken entry.
    return nav && nav.responseStart > 0 && nav.responseStart < perf.now() ? nav : null;
  };
  var activationStart = function () {
    var nav = navEntry();
    return (nav && nav.activationStart) || 0;
  };

  // --- page views -----------------------------------------------------------
  var view; // { id, url, type, sampled, metrics: {NAME: {value, attribution, dirty}} }
  var newView = function (type) {
    var loc = d.location || w.location;
    view = {
      id: 'v1-' + Date.now() + '-' + Math.floor(Math.random() * 9e12 + 1e12),
      url: keepQuery ? loc.href.split('#')[0] : loc.origin + loc.pathname,
      type: type,
      sampled: Math.random() < sampleRate,
      metrics: {}
    };
  };
  var initialType = function () {
    var nav = navEntry();
    if (d.prerendering || activationStart() > 0) return 'prerender';
    if (d.wasDiscarded) return 'restore';
    return nav && nav.type ? nav.type.replace(/_/g, '-') : 'navigate';
  };
  newView(initialType());

  var round = function (name, value) {
    return name === 'CLS' ? Math.round(value * 1e5) / 1e5 : Math.round(value * 10) / 10;
  };
  var set = function (name, value, attribution) {
    if (!(value >= 0)) return;
    value = round(name, value);
    var m = view.metrics[name];
    if (m && m.value === value) return;
    view.metrics[name] = { value: value, attribution: attribution, dirty: true };
  };
  var rating = function (name, value) {
    var b = BOUNDS[name];
    return value <= b[0] ? 'good' : value <= b[1] ? 'needs-improvement' : 'poor';
  };

  // --- visibility -----------------------------------------------------------
  // A page hidden before this script ran is known from its 'visibility-state' entries.
  var firstHiddenTime = d.visibilityState === 'hidden' && !d.prerendering ? 0 : Infinity;
  try {
    if (!d.prerendering) {
      perf.getEntriesByType('visibility-state').forEach(function (e) {
        if (e.name === 'hidden' && e.startTime >= activationStart()) firstHiddenTime = Math.min(firstHiddenTime, e.startTime);
      });
    }
  } catch (e) {}
  on(d, 'visibilitychange', function (e) {
    if (d.visibilityState === 'hidden' && firstHiddenTime === Infinity) firstHiddenTime = e.timeStamp;
  });
  var whenActivated = function (fn) {
    if (d.prerendering) on(d, 'prerenderingchange', fn, true);
    else fn();
  };
  // Work that is not urgent runs when the page is idle, or at once if it is being hidden.
  var whenIdle = function (fn) {
    fn = safe(fn);
    if (d.visibilityState === 'hidden' || !w.requestIdleCallback) fn();
    else w.requestIdleCallback(fn);
  };

  // --- selectors for attribution ---------------------------------------------
  var selector = function (node) {
    var sel = '';
    try {
      while (node && node.nodeType === 1) {
        var cls = node.classList && node.classList.value.trim();
        var part = node.id ? '#' + node.id : node.nodeName.toLowerCase() + (cls ? '.' + cls.replace(/\s+/g, '.') : '');
        if (sel.length + part.length > 79) return sel || part.slice(0, 80);
        sel = sel ? part + '>' + sel : part;
        if (node.id) break;
        node = node.parentNode;
      }
    } catch (e) {}
    return sel || undefined;
  };

  // --- FCP, LCP, TTFB ---------------------------------------------------------
  var fcpSeen = false;
  var afterFcp = [];
  var lcpPo;
  var lcpStopped = false;
  var lcpEntries = function (entries) {
    if (lcpStopped) return;
    var entry = entries[entries.length - 1];
    if (entry && entry.startTime < firstHiddenTime) {
      set('LCP', Math.max(entry.startTime - activationStart(), 0), {
        target: selector(entry.element),
        url: entry.url ? entry.url.slice(0, 500) : undefined
      });
    }
  };
  // LCP can only change until the user first interacts or the page is hidden.
  var stopLcp = function () {
    if (lcpStopped) return;
    if (lcpPo) lcpEntries(lcpPo.takeRecords());
    lcpStopped = true;
    if (lcpPo) lcpPo.disconnect();
  };
  whenActivated(function () {
    observe('paint', function (entries) {
      entries.forEach(function (e) {
        if (e.name === 'first-contentful-paint' && !fcpSeen) {
          fcpSeen = true;
          if (e.startTime < firstHiddenTime) set('FCP', Math.max(e.startTime - activationStart(), 0));
          afterFcp.forEach(function (fn) { fn(); });
        }
      });
    });
    lcpPo = observe('largest-contentful-paint', lcpEntries);
    ['keydown', 'click'].forEach(function (type) {
      on(w, type, function (e) { if (e.isTrusted) whenIdle(stopLcp); }, true);
    });
    var ttfb = function () {
      var nav = navEntry();
      if (nav) set('TTFB', Math.max(nav.responseStart - activationStart(), 0));
    };
    if (d.readyState === 'complete') ttfb();
    else on(w, 'load', function () { setTimeout(safe(ttfb), 0); }, true);
  });

  // --- CLS ------------------------------------------------------------------
  var cls = { value: 0, session: 0, entries: [] };
  var clsEntries = function (entries) {
    entries.forEach(function (entry) {
      if (entry.hadRecentInput) return;
      var first = cls.entries[0];
      var last = cls.entries[cls.entries.length - 1];
      // Session windows: shifts less than 1 s apart, a window at most 5 s long.
      if (cls.session && entry.startTime - last.startTime < 1000 && entry.startTime - first.startTime < 5000) {
        cls.session += entry.value;
        cls.entries.push(entry);
      } else {
        cls.session = entry.value;
        cls.entries = [entry];
      }
      if (cls.session > cls.value) {
        cls.value = cls.session;
        var largest = cls.entries.reduce(function (a, b) { return b.value > a.value ? b : a; });
        var source = (largest.sources || []).filter(function (s) { return s.node && s.node.nodeType === 1; })[0];
        cls.target = source && selector(source.node);
      }
    });
    if (fcpSeen || view.type === 'route' || view.type === 'back-forward-cache') set('CLS', cls.value, { target: cls.target });
  };
  var clsPo;
  // As web-vitals (and CrUX) do, CLS is only reported for pages that painted.
  afterFcp.push(function () {
    clsPo = observe('layout-shift', clsEntries);
    set('CLS', cls.value, { target: cls.target });
  });

  // --- INP ------------------------------------------------------------------
  var hasInteractionId = !!(w.PerformanceEventTiming && 'interactionId' in PerformanceEventTiming.prototype);
  var inp = { list: [], byId: {}, minId: Infinity, maxId: 0, known: 0, base: 0 };
  // performance.interactionCount where the browser has it; else estimated from
  // the interaction ids seen (they grow by 7 per interaction in Chromium).
  var interactionCount = function () {
    if (perf && 'interactionCount' in perf) return perf.interactionCount || 0;
    return inp.maxId ? (inp.maxId - inp.minId) / 7 + 1 : inp.known;
  };
  // Processed at once rather than when idle: a probe reads the value right after the input.
  var inpEntries = function (entries) {
    (function () {
      entries.forEach(function (entry) {
        var id = entry.interactionId;
        if (hasInteractionId) {
          if (!id) return;
          inp.minId = Math.min(inp.minId, id);
          inp.maxId = Math.max(inp.maxId, id);
        } else if (entry.entryType === 'first-input') {
          // Without interaction ids only the first input is known: it stands in for INP.
          id = 'first';
          inp.known = 1;
        } else {
          return;
        }
        var it = inp.byId[id];
        var shortest = inp.list[inp.list.length - 1];
        if (!it && inp.list.length >= MAX_INTERACTIONS && entry.duration <= shortest.latency) return;
        if (it) {
          if (entry.duration > it.latency) { it.latency = entry.duration; it.entry = entry; }
        } else {
          it = inp.byId[id] = { id: id, latency: entry.duration, entry: entry, target: selector(entry.target) };
          inp.list.push(it);
        }
        if (entry.duration >= it.latency && !it.target) it.target = selector(entry.target);
        inp.list.sort(function (a, b) { return b.latency - a.latency; });
        inp.list.splice(MAX_INTERACTIONS).forEach(function (x) { delete inp.byId[x.id]; });
      });
      // Worst interaction, skipping one per 50 interactions (a p98 estimate).
      var skip = Math.floor((interactionCount() - inp.base) / 50);
      var worst = inp.list[Math.min(inp.list.length - 1, skip)];
      if (!worst) return;
      var e = worst.entry;
      set('INP', worst.latency, {
        target: worst.target,
        input_delay: Math.max(e.processingStart - e.startTime, 0),
        processing: Math.max(e.processingEnd - e.processingStart, 0),
        presentation: Math.max(e.startTime + e.duration - e.processingEnd, 0),
        interaction: /^key/.test(e.name) ? 'keyboard' : 'pointer'
      });
    })();
  };
  var eventPo = hasInteractionId && observe('event', inpEntries, { durationThreshold: DURATION_THRESHOLD });
  var firstInputPo = observe('first-input', inpEntries);

  // A new window for INP and CLS: a route change, a bfcache restore, or a probe step.
  var restartWindows = function () {
    cls = { value: 0, session: 0, entries: [] };
    inp.list = [];
    inp.byId = {};
    inp.base = interactionCount();
  };

  // --- snapshots and transport ----------------------------------------------
  var snapshot = function (onlyDirty) {
    var reports = [];
    for (var name in view.metrics) {
      var m = view.metrics[name];
      if (onlyDirty && !m.dirty) continue;
      var report = { metric: name, value: m.value, rating: rating(name, m.value) };
      var a = {};
      var any = false;
      for (var k in m.attribution) {
        var v = m.attribution[k];
        if (v !== undefined && v !== null && v === v) {
          a[k] = typeof v === 'number' ? Math.round(v * 10) / 10 : v;
          any = true;
        }
      }
      if (any) report.attribution = a;
      reports.push(report);
    }
    return { page_view_id: view.id, url: view.url, navigation_type: view.type, reports: reports };
  };
  var takePending = function () {
    [lcpPo, clsPo, eventPo, firstInputPo].forEach(function (po) {
      if (!po) return;
      var records = po.takeRecords();
      if (!records.length) return;
      if (po === lcpPo) lcpEntries(records);
      else if (po === clsPo) clsEntries(records);
      else inpEntries(records);
    });
  };
  var deviceClass = function () {
    var uad = navigator.userAgentData;
    if (uad && uad.mobile) return 'mobile';
    var width = Math.min(w.innerWidth || 0, (w.screen && w.screen.width) || Infinity);
    return width && width < 768 ? 'mobile' : width && width < 1024 ? 'tablet' : 'desktop';
  };
  var send = function () {
    var snap = snapshot(true);
    for (var name in view.metrics) view.metrics[name].dirty = false;
    if (!site || !endpoint || !view.sampled || !snap.reports.length) return;
    var beacon = {
      schema_version: 1,
      site: site,
      page_view_id: snap.page_view_id,
      url: snap.url,
      navigation_type: snap.navigation_type,
      device: deviceClass(),
      snippet_version: VERSION,
      reports: snap.reports
    };
    var conn = navigator.connection;
    if (conn && /^(slow-2g|2g|3g|4g)$/.test(conn.effectiveType)) beacon.effective_type = conn.effectiveType;
    var body = JSON.stringify(beacon);
    // sendBeacon sends text/plain: a "simple" request, so no CORS preflight.
    if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) && w.fetch) {
      fetch(endpoint, { method: 'POST', body: body, keepalive: true, credentials: 'omit', headers: { 'content-type': 'text/plain' } })['catch'](function () {});
    }
  };
  var flushOnHide = function () {
    takePending();
    stopLcp();
    send();
  };
  on(d, 'visibilitychange', function () { if (d.visibilityState === 'hidden') flushOnHide(); });
  on(w, 'pagehide', flushOnHide);

  // bfcache restore: a new page view of the old document.
  on(w, 'pageshow', function (e) {
    if (!e.persisted) return;
    newView('back-forward-cache');
    restartWindows();
    firstHiddenTime = d.visibilityState === 'hidden' ? 0 : Infinity;
    set('TTFB', 0);
    requestAnimationFrame(function () {
      requestAnimationFrame(safe(function () {
        var since = perf.now() - e.timeStamp;
        set('FCP', since);
        set('LCP', since);
      }));
    });
  });

  // SPA route changes: each route gets its own INP and CLS.
  var routeChange = function () {
    var before = view.url;
    var loc = d.location;
    var now = keepQuery ? loc.href.split('#')[0] : loc.origin + loc.pathname;
    if (now === before) return;
    takePending();
    send();
    newView('route');
    restartWindows();
  };
  ['pushState', 'replaceState'].forEach(function (name) {
    var original = history[name];
    if (typeof original !== 'function') return;
    history[name] = function () {
      var result = original.apply(this, arguments);
      safe(routeChange)();
      return result;
    };
  });
  on(w, 'popstate', routeChange);

  w.__vitalsign = {
    version: VERSION,
    /** Current values without side effects. */
    read: safe(function () {
      return snapshot(false);
    }),
    /** Current values, then a new INP/CLS window (like a route change); never sends. */
    flush: safe(function () {
      takePending();
      var snap = snapshot(false);
      for (var name in view.metrics) view.metrics[name].dirty = false;
      newView('route');
      restartWindows();
      return snap;
    })
  };
})();
