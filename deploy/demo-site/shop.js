// A little real work on interaction, so the probe's INP has something to measure.
(function () {
  var button = document.getElementById('add-to-cart');
  if (button) {
    var count = 0;
    button.addEventListener('click', function () {
      var until = performance.now() + 30;
      while (performance.now() < until) { /* the shop's "pricing engine" */ }
      count += 1;
      document.getElementById('cart').textContent = 'Cart: ' + count + (count === 1 ? ' item' : ' items');
    });
  }
  var results = document.getElementById('results');
  if (results) {
    var q = new URLSearchParams(location.search).get('q') || '';
    ['lantern', 'tent', 'rope', 'stove'].filter(function (item) {
      return item.indexOf(q.toLowerCase()) !== -1;
    }).forEach(function (item) {
      var li = document.createElement('li');
      li.textContent = item;
      results.appendChild(li);
    });
    if (!results.children.length) results.textContent = 'Nothing matches "' + q + '".';
  }
})();
