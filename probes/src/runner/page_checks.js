// What `wait_for`, `assert` and `select` steps ask of the page (runner/actions.rs).
// One object of functions; the runner evaluates `(this file).name(arguments as
// JSON)`, so nothing is left on the page's globals between steps.
({
  // 'absent', or whether a person could see the element: laid out with a
  // size and not visibility:hidden.
  visibility: function (selector) {
    var e = document.querySelector(selector);
    if (!e) return 'absent';
    var r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'
      ? 'visible'
      : 'hidden';
  },
  // The element's rendered text, or null when nothing matches.
  text: function (selector) {
    var e = document.querySelector(selector);
    return e ? e.innerText : null;
  },
  bodyContains: function (text) {
    return !!(document.body && document.body.innerText.indexOf(text) >= 0);
  },
  urlContains: function (part) {
    return location.href.indexOf(part) >= 0;
  },
  // Choose an option as a person would, so the page's listeners hear it:
  // 'ok', 'missing' (no element) or 'no-option'.
  select: function (selector, value) {
    var e = document.querySelector(selector);
    if (!e) return 'missing';
    var ok = [].some.call(e.options || [], function (o) { return o.value === value; });
    if (!ok) return 'no-option';
    e.value = value;
    e.dispatchEvent(new Event('input', { bubbles: true }));
    e.dispatchEvent(new Event('change', { bubbles: true }));
    return 'ok';
  }
})
