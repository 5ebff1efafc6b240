/* microfunnel dashboard: reads the collector's admin API (same origin) and
   renders it with DOM APIs only (textContent, never markup strings: channel
   names, paths and ids come from visitors' browsers). The admin token lives
   in this tab's sessionStorage only, and is sent only to this origin. */
(function () {
  'use strict';
  var form = document.getElementById('controls');
  var status = document.getElementById('status');
  var timer = 0;
  var TOKEN_KEY = 'mf_dashboard_token';
  var MODELS = ['first', 'last', 'last-non-direct', 'linear', 'time-decay', 'position'];

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text != null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function num(x, digits) {
    return x == null ? '—' : Number(x).toLocaleString('en', { maximumFractionDigits: digits == null ? 2 : digits });
  }
  // Values are integer minor units; the site's currency (from its conversion
  // definitions) says how many digits a major unit has (EUR 2, JPY 0, KWD 3).
  var currency = null, digits = 2;
  function setCurrency(code) {
    currency = null;
    digits = 2;
    try {
      if (code) {
        digits = new Intl.NumberFormat('en', { style: 'currency', currency: code }).resolvedOptions().maximumFractionDigits;
        currency = code;
      }
    } catch (e) {}
  }
  function money(minor) {
    if (minor == null) return '—';
    var n = (Number(minor) / Math.pow(10, digits)).toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    return currency ? currency + ' ' + n : n;
  }
  function pct(x) { return x == null ? '—' : (x * 100).toLocaleString('en', { maximumFractionDigits: 1 }) + ' %'; }
  function ms(x) { return x == null ? '—' : x < 1000 ? num(x, 0) + ' ms' : num(x / 1000, 1) + ' s'; }
  function when(t) { return t == null ? '—' : new Date(t).toISOString().replace('T', ' ').slice(0, 16) + ' UTC'; }

  /** A table from a header row and rows of cells (`{text, cls}` or plain values). */
  function table(id, head, rows, empty) {
    var t = document.getElementById(id);
    t.replaceChildren();
    var tr = el('tr');
    head.forEach(function (h) { var th = el('th', h); th.scope = 'col'; tr.appendChild(th); });
    t.appendChild(el('thead')).appendChild(tr);
    var body = t.appendChild(el('tbody'));
    if (!rows.length) {
      var td = el('td', empty || 'Nothing yet.', 'text');
      td.colSpan = head.length;
      body.appendChild(el('tr')).appendChild(td);
    }
    rows.forEach(function (r) {
      var row = body.appendChild(el('tr'));
      r.forEach(function (c) {
        row.appendChild(c && typeof c === 'object' ? el('td', c.text, c.cls) : el('td', c));
      });
    });
  }

  function api(path, token) {
    return fetch(path, { headers: { authorization: 'Bearer ' + token }, credentials: 'omit', cache: 'no-store' })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) throw new Error((body.error && body.error.message) || 'HTTP ' + r.status);
          return body;
        });
      });
  }

  function overview(k) {
    var dl = document.getElementById('overview');
    dl.replaceChildren();
    [['Visitors', num(k.visitors, 0)], ['Sessions', num(k.sessions, 0)], ['Conversions', num(k.conversions, 0)],
      ['Conversion rate', pct(k.conversion_rate)], ['Value', money(k.value_minor)],
      ['Time to attribution p50', ms(k.tta_ms && k.tta_ms.p50)], ['p99', ms(k.tta_ms && k.tta_ms.p99)],
      ['Attribution quality (AQS)', num(k.aqs && k.aqs.score, 1)]].forEach(function (f) {
      var d = dl.appendChild(el('div'));
      d.appendChild(el('dt', f[0]));
      d.appendChild(el('dd', f[1]));
    });
  }

  function attribution(a) {
    var byChannel = {};
    function cell(ch) { return byChannel[ch] || (byChannel[ch] = {}); }
    MODELS.forEach(function (m) {
      (a.models[m] || []).forEach(function (c) { cell(c.channel)[m] = num(c.conversions) + ' (' + money(c.value_minor) + ')'; });
    });
    ((a.markov && a.markov.channels) || []).forEach(function (c) { cell(c.channel).markov = num(c.conversions) + ' (' + money(c.value) + ')'; });
    ((a.shapley && a.shapley.channels) || []).forEach(function (c) { cell(c.channel).shapley = num(c.conversions) + ' (' + money(c.value) + ')'; });
    var cols = MODELS.concat(['markov', 'shapley']);
    var rows = Object.keys(byChannel).sort().map(function (ch) {
      return [{ text: ch, cls: 'text' }].concat(cols.map(function (m) { return byChannel[ch][m] || '—'; }));
    });
    table('attribution', ['Channel'].concat(cols), rows, 'No conversion in this period yet.');
  }

  function channels(k) {
    table('channels', ['Channel (' + k.model + ')', 'Conversions', 'Conv. rate', 'Value', 'Avg. order', 'CPA', 'ROAS'],
      (k.channels || []).map(function (c) {
        return [{ text: c.channel, cls: 'text' }, num(c.conversions), pct(c.conversion_rate), money(c.value),
          money(c.average_order_value), money(c.cpa), c.roas == null ? '—' : num(c.roas) + '×'];
      }));
    var f = document.getElementById('funnel');
    f.replaceChildren();
    (k.funnel || []).forEach(function (s) {
      f.appendChild(el('li', s.stage + ': ' + num(s.visitors, 0) + (s.pass_through == null ? '' : ' (' + pct(s.pass_through) + ')')));
    });
  }

  function leads(l) {
    table('leads', ['Visitor', 'User', 'Score', 'Tier', 'Top drivers', 'Events', 'Last seen'],
      (l.leads || []).map(function (v) {
        var drivers = (v.drivers || []).map(function (d) { return d.action + ' +' + num(d.points); }).join(', ');
        return [{ text: v.visitor_id, cls: 'text' }, { text: v.user_id || '—', cls: 'text' }, num(v.score, 1), v.tier,
          { text: drivers || '—', cls: 'text' }, num(v.events, 0), when(v.last_seen)];
      }), 'No visitor scored yet.');
  }

  function paths(p) {
    table('paths', ['Path', 'Conversions', 'Value', 'Non-converting'], (p.paths || []).map(function (x) {
      return [{ text: x.path, cls: 'text' }, num(x.conversions), money(x.value_minor), num(x.nulls, 0)];
    }));
    table('fastest', ['Path', 'Conversions', 'Fastest', 'Average'], (p.fastest || []).map(function (x) {
      return [{ text: x.path, cls: 'text' }, num(x.conversions), ms(x.min_ms_to_convert), ms(x.avg_ms_to_convert)];
    }));
  }

  function tiers(site) {
    fetch('/v1/sites/' + encodeURIComponent(site) + '/config', { credentials: 'omit' }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (c) {
        var t = c && c.rules && c.rules.tiers;
        if (!t) return;
        var sel = form.elements.tier, keep = sel.value;
        sel.replaceChildren(el('option', 'all tiers'));
        sel.firstChild.value = '';
        Object.keys(t).sort(function (a, b) { return t[b] - t[a]; }).forEach(function (id) {
          var o = el('option', id + ' (≥ ' + t[id] + ')');
          o.value = id;
          sel.appendChild(o);
        });
        sel.value = keep;
      }).catch(function () {});
  }

  function load() {
    clearTimeout(timer);
    var f = form.elements, site = f.site.value.trim(), token = f.token.value;
    if (!site || !token) return;
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) {}
    var q = 'site=' + encodeURIComponent(site);
    var period = (f.from.value ? '&from=' + f.from.value : '') + (f.to.value ? '&to=' + f.to.value : '');
    status.className = '';
    status.textContent = 'Loading…';
    Promise.all([
      api('/v1/reports/attribution?' + q + period, token),
      api('/v1/sites/' + encodeURIComponent(site), token),
      api('/v1/reports/kpis?' + q + period + '&model=' + encodeURIComponent(f.model.value), token),
      api('/v1/leads?' + q + (f.tier.value ? '&tier=' + encodeURIComponent(f.tier.value) : ''), token),
      api('/v1/reports/paths?' + q + period, token),
    ]).then(function (r) {
      var defs = (r[1].config && r[1].config.conversions) || [];
      setCurrency((defs.filter(function (d) { return d.currency; })[0] || {}).currency);
      attribution(r[0]);
      overview(r[2]);
      channels(r[2]);
      leads(r[3]);
      paths(r[4]);
      status.textContent = 'Site ' + site + ' as of ' + new Date().toLocaleTimeString('en') + '.';
    }).catch(function (e) {
      status.className = 'error';
      status.textContent = e.message;
    }).then(function () {
      if (f.live.checked) timer = setTimeout(load, 10000);
    });
  }

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    tiers(form.elements.site.value.trim());
    load();
  });
  form.elements.live.addEventListener('change', load);
  var params = new URLSearchParams(location.search);
  if (params.get('site')) form.elements.site.value = params.get('site');
  try { form.elements.token.value = sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) {}
  if (form.elements.token.value) { tiers(form.elements.site.value); load(); }
})();
