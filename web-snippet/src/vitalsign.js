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
 * it runs in lab mode: it measures the same way and never sends; what it would
 * send goes to `window.__vitalsignLab(snapshot)` when a probe defined one. Either
 * way `window.__vitalsign` exposes { version, read() } for probes and tests.
 *
 * It must never throw into the host page: set-up runs inside one try, and every
 * callback the browser calls later is wrapped by `safe`.
 *
 * Size habits (the build mangles properties that start with `_`): internal
 * objects use `_names`; strings on the wire keep their names; one observer helper
 * takes space-separated entry types; `let` everywhere (terser keeps `const`).
 */
(() => {
  let VERSION = '0.1.0';
  let w = window;
  let d = document;
  let perf = performance;
  let nav = navigator;
  if (w.__vitalsign) return;
  try {
    // [good bound, poor bound] per metric: a value on a bound is the better class.
    let BOUNDS = { LCP: [2500, 4000], CLS: [0.1, 0.25], INP: [200, 500], FCP: [1800, 3000], TTFB: [800, 1800] };
    let INFINITY = 1 / 0;
    let HIDDEN = 'hidden';
    let ROUTE = 'route';
    let BFCACHE = 'back-forward-cache';
    let SOFT_NAV = 'soft-navigation';

    let script = d.currentScript;
    let attr = (name) => script && script.getAttribute('data-' + name);
    let site = attr('site');
    let keepQuery = attr('query') == 1;
    let sampleRate = parseFloat(attr('sample'));
    if (!(sampleRate >= 0 && sampleRate <= 1)) sampleRate = 1;
    let endpoint = attr('endpoint');
    try {
      endpoint = endpoint || new URL('/v1/rum', script.src).href;
    } catch (e) {}

    let safe = (fn) => (a) => {
      try {
        return fn(a);
      } catch (e) {}
    };
    let on = (target, type, fn) => target.addEventListener(type, safe(fn), true);
    let max0 = (value) => Math.max(value, 0);
    let round = (value, scale = 10) => Math.round(value * scale) / scale;
    // One observer for one or more space-separated entry types; none when the
    // browser supports none of them (Safari has no layout-shift: no CLS, not CLS 0).
    // durationThreshold only matters to 'event': entries shorter than 40 ms never
    // reach the observer (web-vitals uses 40 ms too); first-input has no threshold.
    let supports = safe((type) => PerformanceObserver.supportedEntryTypes.includes(type));
    let observe = (types, fn) => {
      try {
        let po = new PerformanceObserver(safe((list) => fn(list.getEntries())));
        let supported = types.split(' ').filter(supports);
        supported.forEach((type) => po.observe({ type, buffered: true, durationThreshold: 40 }));
        return supported[0] && po;
      } catch (e) {}
    };

    // Sanity checks as in web-vitals: a responseStart of 0 or in the future is a broken entry.
    let navEntry = () => {
      let entry = perf.getEntriesByType('navigation')[0];
      return entry && entry.responseStart > 0 && entry.responseStart < perf.now() && entry;
    };
    let activation = () => (navEntry() || {}).activationStart || 0;
    let sinceActivation = (time) => max0(time - activation());

    // --- page views ---------------------------------------------------------
    // view: { _id, _url, _type, _sampled, _metrics: {NAME: {_value, _attribution, _dirty}} }
    let view;
    // A route's URL: origin and path (the query only with data-query), then the
    // path of a fragment that looks like one (`#/cart`, `#!/cart`: a hash router's
    // route, never its query). The collector groups such URLs by the fragment's
    // path; other fragments (`#top`) are not routes. (A match array joins as its text.)
    let pageUrl = (loc = location) =>
      loc.origin + loc.pathname + (keepQuery ? loc.search : '') + (/^#!?\/[^?]*/.exec(loc.hash) || '');
    let newView = (type, loc) => {
      view = {
        // The time, then a random fraction: unique enough, and only letters, digits, '.' and '-'.
        _id: 'v1-' + Date.now() + Math.random(),
        _url: pageUrl(loc),
        _type: type,
        _sampled: Math.random() < sampleRate,
        _metrics: {},
      };
    };
    let first = navEntry();
    newView(
      d.prerendering || activation() > 0
        ? 'prerender'
        : d.wasDiscarded
          ? 'restore'
          : first
            ? first.type.replace(/_/g, '-')
            : 'navigate',
    );
    // TTFB belongs to the page load, even when it is known only after a route
    // change or a bfcache restore (as web-vitals files it under its first metric).
    let firstView = view;

    // Attribution parts that do not exist stay undefined, which JSON leaves out
    // (no empty strings: the wire contract wants selectors and URLs of at least one character).
    let set = (name, value, attribution) => {
      if (value >= 0) {
        value = round(value, name == 'CLS' ? 1e5 : 10);
        let metrics = view._metrics;
        if (!metrics[name] || metrics[name]._value !== value) {
          metrics[name] = { _value: value, _attribution: attribution, _dirty: 1 };
        }
      }
    };

    // --- visibility ---------------------------------------------------------
    // A page hidden before this script ran is known from its 'visibility-state' entries.
    let firstHidden = (
      (!d.prerendering &&
        perf.getEntriesByType('visibility-state').find((e) => e.name == HIDDEN && e.startTime >= activation())) ||
      {}
    ).startTime;
    if (firstHidden == null) firstHidden = d.visibilityState == HIDDEN && !d.prerendering ? 0 : INFINITY;

    // --- selectors for attribution ------------------------------------------
    // `#id` when the element has one, else tag.classes, joined by '>', at most 80 characters.
    let selector = (node) => {
      let sel = '';
      while (node && node.nodeType == 1) {
        let classes = (node.getAttribute('class') || '').trim();
        let part = node.id ? '#' + node.id : node.localName + (classes ? '.' + classes.replace(/\s+/g, '.') : '');
        if (sel.length + part.length > 79) return sel || part.slice(0, 80);
        sel = sel ? part + '>' + sel : part;
        if (node.id) break;
        node = node.parentNode;
      }
      return sel || undefined;
    };

    // --- FCP, LCP, TTFB -----------------------------------------------------
    let fcpSeen;
    let lcpPo;
    let lcpDone;
    let lcpEntries = (entries) => {
      let entry = entries[entries.length - 1];
      if (!lcpDone && entry && entry.startTime < firstHidden) {
        set('LCP', sinceActivation(entry.startTime), {
          target: selector(entry.element),
          url: entry.url.slice(0, 500) || undefined,
        });
      }
    };
    // LCP can only change until the user first interacts or the page is hidden.
    let stopLcp = safe(() => {
      if (!lcpDone && lcpPo) {
        lcpEntries(lcpPo.takeRecords());
        lcpPo.disconnect();
      }
      lcpDone = 1;
    });
    let activated = () => {
      observe('paint', (entries) =>
        entries.forEach((entry) => {
          if (entry.name == 'first-contentful-paint' && !fcpSeen) {
            fcpSeen = 1;
            // As web-vitals (and CrUX) do, CLS is only measured for pages that painted while visible.
            if (entry.startTime < firstHidden) {
              set('FCP', sinceActivation(entry.startTime));
              startCls();
            }
          }
        }),
      );
      lcpPo = observe('largest-contentful-paint', lcpEntries);
      // In a task of its own, off the input's critical path (web-vitals waits for
      // idle time; the value is the same: the browser adds no candidate after input).
      ['keydown', 'click'].forEach((type) => on(w, type, (e) => e.isTrusted && setTimeout(stopLcp)));
      let ttfb = () => {
        let entry = navEntry();
        let current = view;
        view = firstView;
        if (entry) {
          set('TTFB', sinceActivation(entry.responseStart));
          if (current != view) send();
        }
        view = current;
      };
      if (d.readyState == 'complete') ttfb();
      else on(w, 'load', () => setTimeout(safe(ttfb)));
    };
    if (d.prerendering) on(d, 'prerenderingchange', activated);
    else activated();

    // --- CLS ----------------------------------------------------------------
    let cls = 0;
    let clsTarget;
    let session = 0;
    let sessionEntries = [];
    let clsPo;
    let reportCls = () => clsPo && set('CLS', cls, { target: clsTarget });
    let clsEntries = (entries) => {
      entries.forEach((entry) => {
        if (entry.hadRecentInput) return;
        // Session windows: shifts less than 1 s apart, a window at most 5 s long.
        if (
          session &&
          entry.startTime - sessionEntries[sessionEntries.length - 1].startTime < 1000 &&
          entry.startTime - sessionEntries[0].startTime < 5000
        ) {
          session += entry.value;
          sessionEntries.push(entry);
        } else {
          session = entry.value;
          sessionEntries = [entry];
        }
        if (session > cls) {
          cls = session;
          let largest = sessionEntries.reduce((a, b) => (b.value > a.value ? b : a));
          let source = (largest.sources || []).find((s) => s.node && s.node.nodeType == 1);
          clsTarget = source && selector(source.node);
        }
      });
      reportCls();
    };
    let startCls = () => {
      clsPo = clsPo || observe('layout-shift', clsEntries);
      reportCls();
    };

    // --- INP ----------------------------------------------------------------
    // Soft navigations as Chromium reports them (on by default in 156; the flags
    // --enable-features=SoftNavigationHeuristics / --disable-features=... change
    // nothing there). web-vitals also wants PerformanceSoftNavigation's
    // getLargestInteractionContentfulPaint, which only the experimental
    // implementations before the launch lacked: not worth its bytes here.
    let softNavs = supports(SOFT_NAV);
    // The worst ten interactions, worst first: {_id, _latency, _entries, _attribution}.
    let worst = [];
    let minId = INFINITY;
    let maxId = 0;
    let countBase = 0;
    // performance.interactionCount where the browser has it; else estimated from
    // the interaction ids seen (they grow by 7 per interaction in Chromium).
    let interactionCount = () =>
      'interactionCount' in perf ? perf.interactionCount : maxId && (maxId - minId) / 7 + 1;
    // Processed at once rather than when idle: a probe reads the value right after the input.
    // A soft-navigation entry starts a new route where it stands among the event
    // entries (after the old route's INP is reported: inpEntries([])): Chromium
    // queues it after those of the interaction that caused it (which so stays
    // with the old route), the order web-vitals sorts them into by end time.
    let inpEntries = (entries) => {
      entries.forEach((entry) => {
        if (entry.entryType == SOFT_NAV) {
          inpEntries([]);
          return newRoute(new URL(entry.name));
        }
        let id = entry.interactionId;
        // Entries without an interaction id are no interaction (hover, scroll), but
        // for the first input of a browser without ids, which then stands in for INP
        // (in Chromium the first-input entry has its interaction's id).
        if (!id && entry.entryType != 'first-input') return;
        if (id) {
          minId = Math.min(minId, id);
          maxId = Math.max(maxId, id);
        }
        let it = worst.find((x) => x._id == id);
        if (!it) {
          if (worst[9] && entry.duration <= worst[9]._latency) return;
          worst.push((it = { _id: id, _latency: 0, _entries: [] }));
        }
        it._entries.push(entry);
        if (entry.duration > it._latency) it._latency = entry.duration;
        // The split, as web-vitals' attribution build: the entries of the
        // interaction painted in the frame of its longest entry.
        let longest = it._entries.find((e) => e.duration == it._latency);
        let paint = longest.startTime + longest.duration;
        let start = INFINITY;
        let end = 0;
        let target;
        it._entries.forEach((e) => {
          if (Math.abs(e.startTime + e.duration - paint) <= 8) {
            start = Math.min(start, e.processingStart);
            end = Math.max(end, e.processingEnd);
            target = target || e.target;
          }
        });
        start = Math.max(start, longest.startTime);
        end = Math.min(end, paint);
        it._attribution = {
          target: selector(target),
          input_delay: round(start - longest.startTime),
          processing: round(max0(end - start)),
          presentation: round(max0(paint - end)),
          interaction: /^key/.test(longest.name) ? 'keyboard' : 'pointer',
        };
        worst.sort((a, b) => b._latency - a._latency);
        worst.splice(10);
      });
      // Worst interaction, skipping one per 50 interactions (a p98 estimate).
      let count = interactionCount() - countBase;
      let candidate = worst[Math.min(worst.length - 1, Math.floor(count / 50))];
      if (candidate) set('INP', candidate._latency, candidate._attribution);
      // As web-vitals: after a restore or a route change (any view but the first)
      // with interactions all too fast to be observed, INP is 8 ms (one frame), not missing.
      else if (count > 0 && view != firstView) set('INP', 8);
    };
    let eventPo = observe('event first-input ' + SOFT_NAV, inpEntries);

    // A new window for INP and CLS: a route change, a bfcache restore, or a probe step.
    let restartWindows = () => {
      // A session of 0 makes the next shift open a new window (sessionEntries are then replaced).
      cls = session = 0;
      // CLS 0 names no source (not the last window's).
      clsTarget = undefined;
      worst = [];
      countBase = interactionCount();
      reportCls();
    };

    // --- snapshots and transport --------------------------------------------
    // take: only reports changed since the last take, and mark them sent.
    let snapshot = (take) => {
      let metrics = view._metrics;
      return {
        page_view_id: view._id,
        url: view._url,
        navigation_type: view._type,
        reports: Object.keys(metrics)
          .filter((name) => !take || metrics[name]._dirty)
          .map((name) => {
            let m = metrics[name];
            let bounds = BOUNDS[name];
            if (take) m._dirty = 0;
            return {
              metric: name,
              value: m._value,
              rating: m._value <= bounds[0] ? 'good' : m._value <= bounds[1] ? 'needs-improvement' : 'poor',
              attribution: m._attribution,
            };
          }),
      };
    };
    let takePending = () => {
      if (!lcpDone && lcpPo) lcpEntries(lcpPo.takeRecords());
      if (clsPo) clsEntries(clsPo.takeRecords());
      if (eventPo) inpEntries(eventPo.takeRecords());
    };
    // Lab mode never sends: a page view's last values (at a route change, a
    // hide, pagehide) go to the probe's recorder instead, if one is there.
    let send = () => {
      let snap = snapshot(1);
      if (!site) return w.__vitalsignLab && w.__vitalsignLab(snap);
      if (!view._sampled || !snap.reports.length) return;
      let width = Math.min(w.innerWidth, screen.width) || INFINITY;
      let agent = nav.userAgentData;
      let connection = nav.connection || {};
      snap.schema_version = 1;
      snap.site = site;
      snap.device = (agent && agent.mobile) || width < 768 ? 'mobile' : width < 1024 ? 'tablet' : 'desktop';
      if (/^(slow-2g|[234]g)$/.test(connection.effectiveType)) snap.effective_type = connection.effectiveType;
      snap.snippet_version = VERSION;
      let body = JSON.stringify(snap);
      // sendBeacon sends text/plain (so does fetch with a string body): a "simple"
      // request, so no CORS preflight.
      if (!(nav.sendBeacon && nav.sendBeacon(endpoint, body))) {
        fetch(endpoint, { method: 'POST', body, keepalive: true, credentials: 'omit' }).catch(() => {});
      }
    };
    let flushOnHide = () => {
      takePending();
      stopLcp();
      send();
    };
    on(d, 'visibilitychange', (e) => {
      if (d.visibilityState == HIDDEN) {
        if (firstHidden == INFINITY) firstHidden = e.timeStamp;
        flushOnHide();
      }
    });
    on(w, 'pagehide', flushOnHide);

    // bfcache restore: a new page view of the old document.
    on(w, 'pageshow', (e) => {
      if (e.persisted) {
        newView(BFCACHE);
        restartWindows();
        firstHidden = d.visibilityState == HIDDEN ? 0 : INFINITY;
        lcpDone = 1;
        // As web-vitals: TTFB 0 only once the page load's TTFB was reported (never
        // after an invalid navigation entry, nor for a restore before load).
        if (firstView._metrics.TTFB) set('TTFB', 0);
        requestAnimationFrame(() =>
          requestAnimationFrame(
            safe(() => {
              let since = perf.now() - e.timeStamp;
              set('FCP', since);
              set('LCP', since);
              startCls();
            }),
          ),
        );
      }
    });

    // SPA route changes: each route gets its own INP and CLS. Where the browser
    // reports soft navigations, they alone start routes (see inpEntries), as
    // web-vitals with reportSoftNavs; elsewhere a History-API URL change does.
    let newRoute = (loc) => {
      send();
      newView(ROUTE, loc);
      restartWindows();
    };
    let routeChange = safe(() => {
      if (!softNavs && pageUrl() != view._url) {
        takePending();
        newRoute();
      }
    });
    ['pushState', 'replaceState'].forEach((name) => {
      let original = history[name];
      history[name] = function () {
        let result = original.apply(this, arguments);
        routeChange();
        return result;
      };
    });
    on(w, 'popstate', routeChange);

    w.__vitalsign = {
      version: VERSION,
      /** The current page view's values, entries not yet delivered to the observers included. */
      read: safe(() => (takePending(), snapshot())),
    };
  } catch (e) {}
})();
