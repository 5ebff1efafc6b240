/* microfunnel built-in consent banner, fetched by mf.js only with
   data-consent="banner": see crates/browser/LOADER.md. DOM APIs and inline
   styles only (no markup strings, no external CSS). Nothing is stored before
   a grant; only a grant is remembered (a denial lives in memory only). */
(function (w, d) {
  var s = d.querySelector('script[data-consent="banner"][data-site]'), k, saved, box, back;
  if (!s || !w.mf) return;
  k = 'mf_' + s.getAttribute('data-site') + '_choice';
  try { saved = JSON.parse(localStorage.getItem(k)); } catch (e) {}
  if (saved) return mf('consent', saved);
  function el(tag, css, text) {
    var e = d.createElement(tag);
    e.style.cssText = css;
    if (text) e.textContent = text;
    return e;
  }
  function choose(c) {
    var had = box.contains(d.activeElement);
    box.remove();
    // Keyboard users get their place back: focus returns to where it was
    // before it entered the banner (else Tab simply goes on into the page).
    if (had && back && back.isConnected) back.focus();
    mf('consent', c);
    if (c != 'deny-all') try { localStorage.setItem(k, JSON.stringify(c)); } catch (e) {}
  }
  function show() {
    var btn = 'margin:.5em .5em 0 0;padding:.5em 1em;font:inherit;color:#111;background:#fff;border:1px solid #111;border-radius:4px;cursor:pointer';
    box = el('div', 'position:fixed;left:1em;right:1em;bottom:1em;z-index:2147483647;max-width:40em;margin:0 auto;padding:1em;' +
      'font:15px/1.4 system-ui,sans-serif;color:#111;background:#fff;border:1px solid #555;border-radius:6px;box-shadow:0 2px 12px rgba(0,0,0,.3)');
    box.setAttribute('role', 'dialog');
    box.setAttribute('aria-label', 'Privacy choices');
    box.appendChild(el('p', 'margin:0',
      'This site measures visits and adapts its content only with your consent. Nothing is measured or stored until you choose.'));
    [['Accept all', 'grant-all'], ['Only necessary', 'deny-all'],
      ['Analytics only', { analytics: true, personalization: false, marketing: false }]].forEach(function (b) {
      var e = el('button', btn, b[0]);
      e.type = 'button';
      e.addEventListener('click', function () { choose(b[1]); });
      box.appendChild(e);
    });
    // Escape dismisses as "only necessary": nothing granted, nothing stored.
    box.addEventListener('keydown', function (e) { if (e.key == 'Escape') choose('deny-all'); });
    box.addEventListener('focusin', function (e) { if (!box.contains(e.relatedTarget)) back = e.relatedTarget; });
    // First in the tab order, without stealing focus from the page.
    d.body.prepend(box);
  }
  d.readyState == 'loading' ? d.addEventListener('DOMContentLoaded', show) : show();
})(window, document);
