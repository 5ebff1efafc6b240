// The site's own consent bar (a CMP would do the same through Consent
// Mode or TCF): it keeps the visitor's choice and tells microfunnel on
// every page.
(function () {
  var bar = document.querySelector('.consent'), saved = null;
  try { saved = JSON.parse(localStorage.getItem('demo-consent')); } catch (e) {}
  if (saved) { mf('consent', saved); bar.hidden = true; }
  bar.querySelectorAll('[data-consent]').forEach(function (b) {
    b.addEventListener('click', function () {
      var v = b.getAttribute('data-consent'), choice = v.charAt(0) === '{' ? JSON.parse(v) : v;
      try { localStorage.setItem('demo-consent', JSON.stringify(choice)); } catch (e) {}
      mf('consent', choice);
      bar.hidden = true;
    });
  });
})();
