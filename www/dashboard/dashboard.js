/* microfunnel dashboard: reads the collector's admin API (same origin) and
   renders it with DOM APIs only (textContent, never markup strings: channel
   names, paths and ids come from visitors' browsers). It logs in with a site
   token (owner or analyst), a share link (#share=…, aggregates only) or the
   operator's admin token, and shows what that credential may read: a section
   the API refuses (403) is hidden. The token lives in this tab's
   sessionStorage only (gone with the tab), is sent only to this origin, and
   a share link's secret is taken out of the address bar at once. */
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
  // Values are integer minor units; the collector says which currency and
  // how many digits its minor units have (the core's ISO 4217 table: EUR 2,
  // JPY 0, KWD 3), so what is shown is exactly what is stored.
  var currency = null, digits = 2;
  function setCurrency(code, d) {
    currency = code || null;
    digits = typeof d === 'number' ? d : 2;
  }
  function money(minor) {
    if (minor == null) return '—';
    var major = Number(minor) / Math.pow(10, digits);
    var opts = { minimumFractionDigits: digits, maximumFractionDigits: digits };
    if (currency) {
      try {
        return new Intl.NumberFormat('en', Object.assign({ style: 'currency', currency: currency }, opts)).format(major);
      } catch (e) {}
    }
    return major.toLocaleString('en', opts);
  }
  function pct(x) { return x == null ? '—' : (x * 100).toLocaleString('en', { maximumFractionDigits: 1 }) + ' %'; }
  function ms(x) { return x == null ? '—' : x < 1000 ? num(x, 0) + ' ms' : num(x / 1000, 1) + ' s'; }
  function when(t) { return t == null ? '—' : new Date(t).toISOString().replace('T', ' ').slice(0, 16) + ' UTC'; }

  /** A table from a header row and rows of cells (`{text, cls}`, a ready `<td>`, or plain values). */
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
        row.appendChild(c instanceof Node ? c : c && typeof c === 'object' ? el('td', c.text, c.cls) : el('td', c));
      });
    });
  }

  function api(path, token, method, body) {
    var init = { headers: { authorization: 'Bearer ' + token }, credentials: 'omit', cache: 'no-store' };
    if (method) init.method = method;
    if (body) { init.body = JSON.stringify(body); init.headers['content-type'] = 'application/json'; }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        if (r.ok) return b;
        var e = new Error((b.error && b.error.message) || 'HTTP ' + r.status);
        e.status = r.status;
        throw e;
      });
    });
  }
  /** The answer, or null when this credential may not read it (403). */
  function allowed(p) {
    return p.catch(function (e) { if (e.status === 403) return null; throw e; });
  }
  function show(family, yes) {
    document.querySelectorAll('[data-needs="' + family + '"]').forEach(function (s) { s.hidden = !yes; });
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

  // Charts. Time series with uPlot (vendor/, from npm: small and fast enough
  // for ten thousand points); categories as bars of plain elements, whose
  // labels and figures are text a screen reader reads.
  var PALETTE = ['#2b6cb0', '#c05621', '#2f855a', '#b83280', '#6b46c1', '#b7791f', '#2c7a7b', '#c53030', '#4a5568', '#975a16', '#276749', '#553c9a'];
  var plots = {};
  /** `opt.tick`: an axis label from a label (default: dates as MM-DD, hours as HH:00); `opt.aria`: the chart's text. */
  function chart(id, labels, series, format, whole, opt) {
    opt = opt || {};
    var box = document.getElementById(id);
    if (plots[id]) { plots[id].destroy(); delete plots[id]; }
    box.replaceChildren();
    if (!series.length) { box.appendChild(el('p', 'Nothing in this period yet.', 'hint')); return; }
    if (typeof uPlot !== 'function') { box.appendChild(el('p', 'The chart library did not load.', 'hint')); return; }
    var xs = labels.map(function (_, i) { return i; });
    var opts = {
      width: Math.max(280, box.clientWidth || 600), height: 220,
      scales: { x: { time: false } },
      legend: { live: false },
      series: [{ label: 'when', value: function (u, v) { return v == null ? '' : labels[v] || ''; } }].concat(series.map(function (s, i) {
        return { label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: labels.length <= 48 },
          value: function (u, v) { return v == null ? '—' : format(v); } };
      })),
      axes: [
        // Days as MM-DD, hours as HH:00 (the full label is in the legend).
        { space: 60, values: function (u, splits) { return splits.map(function (v) { var l = labels[Math.round(v)] || ''; return opt.tick ? opt.tick(l) : l.length > 10 ? l.slice(11) : l.slice(5); }); } },
        // Counts of people step by whole numbers: no axis at 0.25 visitor.
        whole ? { values: function (u, splits) { return splits.map(format); }, size: 96, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000] }
          : { values: function (u, splits) { return splits.map(format); }, size: 96 },
      ],
    };
    plots[id] = new uPlot(opts, [xs].concat(series.map(function (s) { return s.data; })), box);
    var totals = series.map(function (s) { return s.label + ' ' + format(s.data.reduce(function (a, b) { return a + b; }, 0)); });
    box.setAttribute('aria-label', opt.aria || 'Totals: ' + totals.join(', '));
  }
  window.addEventListener('resize', function () {
    Object.keys(plots).forEach(function (id) {
      var w = document.getElementById(id).clientWidth;
      if (w) plots[id].setSize({ width: Math.max(280, w), height: 220 });
    });
  });
  /** Horizontal bars: rows of [label, value, text]; lengths relative to the largest. */
  function bars(box, rows, color) {
    var max = rows.reduce(function (m, r) { return Math.max(m, r[1] || 0); }, 0);
    rows.forEach(function (r) {
      var row = box.appendChild(el('div', null, 'bar'));
      row.appendChild(el('span', r[0], 'label'));
      var fill = row.appendChild(el('span', null, 'track')).appendChild(el('span', null, 'fill'));
      fill.style.width = (max > 0 ? (100 * (r[1] || 0)) / max : 0) + '%';
      if (color) fill.style.background = color;
      row.appendChild(el('span', r[2], 'n'));
    });
  }
  function series(s) {
    document.getElementById('time-hint').textContent = (s.bucket === 'hour' ? 'By hour' : 'By day') + ' in ' + s.timezone +
      ', from ' + s.labels[0] + ' to ' + s.labels[s.labels.length - 1] + '; credit under the ' + s.model + ' model (KPI model above).';
    chart('chart-conversions', s.labels, s.channels.map(function (c) { return { label: c.channel, data: c.conversions }; }),
      function (v) { return num(v); });
    chart('chart-value', s.labels, s.channels.map(function (c) { return { label: c.channel, data: c.value_minor }; }), money);
    chart('chart-tiers', s.labels, s.tiers.filter(function (t) { return t.visitors.some(function (n) { return n > 0; }); })
      .map(function (t) { return { label: t.tier, data: t.visitors }; }), function (v) { return num(v, 0); }, true);
    var tta = document.getElementById('tta');
    tta.replaceChildren();
    var total = s.tta.reduce(function (a, b) { return a + b.conversions; }, 0);
    if (!total) tta.appendChild(el('p', 'No conversion in this period yet.', 'hint'));
    else bars(tta, s.tta.map(function (b) { return [b.bin, b.conversions, num(b.conversions, 0) + ' (' + pct(b.conversions / total) + ')']; }));
  }
  function modelBars(a) {
    var box = document.getElementById('models');
    box.replaceChildren();
    var cols = MODELS.concat(['markov', 'shapley']), by = {};
    function put(ch, m, v) { (by[ch] = by[ch] || {})[m] = v; }
    MODELS.forEach(function (m) { (a.models[m] || []).forEach(function (c) { put(c.channel, m, c.conversions); }); });
    ((a.markov && a.markov.channels) || []).forEach(function (c) { put(c.channel, 'markov', c.conversions); });
    ((a.shapley && a.shapley.channels) || []).forEach(function (c) { put(c.channel, 'shapley', c.conversions); });
    var chs = Object.keys(by).sort();
    if (!chs.length) { box.appendChild(el('p', 'No conversion in this period yet.', 'hint')); return; }
    var max = 0;
    chs.forEach(function (ch) { cols.forEach(function (m) { max = Math.max(max, by[ch][m] || 0); }); });
    chs.forEach(function (ch) {
      box.appendChild(el('div', ch, 'group'));
      cols.forEach(function (m, i) {
        var row = box.appendChild(el('div', null, 'bar'));
        row.appendChild(el('span', m, 'label'));
        var fill = row.appendChild(el('span', null, 'track')).appendChild(el('span', null, 'fill'));
        fill.style.width = (max > 0 ? (100 * (by[ch][m] || 0)) / max : 0) + '%';
        fill.style.background = PALETTE[i % PALETTE.length];
        row.appendChild(el('span', num(by[ch][m] || 0), 'n'));
      });
    });
  }
  function stages(st) {
    var box = document.getElementById('stages');
    box.replaceChildren();
    var rows = (st && st.stages) || [];
    if (!rows.length) { box.appendChild(el('p', 'The site\u2019s rules define no stage.', 'hint')); return; }
    bars(box, rows.map(function (r) {
      var p = r.from_previous;
      var rate = p && p.rate != null ? ', ' + pct(p.rate) + ' from ' + p.stage : '';
      return [r.label || r.stage, r.entered, num(r.entered, 0) + ' entered' + rate];
    }), '#2f855a');
  }

  function channels(k) {
    table('channels', ['Channel (' + k.model + ')', 'Conversions', 'Conv. rate', 'Value', 'Avg. order', 'CPA', 'ROAS'],
      (k.channels || []).map(function (c) {
        return [{ text: c.channel, cls: 'text' }, num(c.conversions), pct(c.conversion_rate), money(c.value),
          money(c.average_order_value), money(c.cpa), c.roas == null ? '—' : num(c.roas) + '×'];
      }));
    var f = document.getElementById('funnel');
    f.replaceChildren();
    bars(f, (k.funnel || []).map(function (s) {
      return [s.stage, s.visitors, num(s.visitors, 0) + (s.pass_through == null ? '' : ' (' + pct(s.pass_through) + ')')];
    }));
  }

  function leads(l) {
    table('leads', ['Visitor', 'User', 'Score', 'Tier', 'Stage', 'Top drivers', 'Events', 'Last seen'],
      (l.leads || []).map(function (v) {
        var drivers = (v.drivers || []).map(function (d) { return d.action + ' +' + num(d.points); }).join(', ');
        return [{ text: v.visitor_id, cls: 'text' }, { text: v.user_id || '—', cls: 'text' }, num(v.score, 1), v.tier,
          { text: v.stage || '—', cls: 'text' }, { text: drivers || '—', cls: 'text' }, num(v.events, 0), when(v.last_seen)];
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

  /** The CTA holdout test: figures, a forest plot of the absolute lift per tier, the table, the calibration. */
  function lift(l) {
    var o = l.overall, hint = document.getElementById('lift-hint');
    hint.textContent = l.holdout_percent > 0
      ? l.holdout_percent + ' % of visitors are held out: they see the coldest tier’s calls to action whatever their score. ' +
        'The p-value stays valid however often you look (' + num(l.looks, 0) + ' daily looks so far).'
      : 'No holdout is running (Settings › Call-to-action variants › Holdout): the lift below is from visitors held out earlier in this period, if any.';
    var figs = document.getElementById('lift-figures');
    figs.replaceChildren();
    function ci(e, f) { return e.estimate == null ? '—' : f(e.estimate) + ' [' + f(e.lower) + ', ' + f(e.upper) + ']'; }
    function pp(x) { return x == null ? '—' : (x >= 0 ? '+' : '') + (x * 100).toLocaleString('en', { maximumFractionDigits: 1 }) + ' pt'; }
    function rel(x) { return x == null ? '—' : (x >= 0 ? '+' : '') + (x * 100).toLocaleString('en', { maximumFractionDigits: 0 }) + ' %'; }
    [['Treated', pct(o.treated.rate) + ' of ' + num(o.treated.visitors, 0)],
      ['Held out', pct(o.holdout.rate) + ' of ' + num(o.holdout.visitors, 0)],
      ['Absolute lift', ci(o.absolute, pp)],
      ['Relative lift', ci(o.relative, rel)],
      ['Always-valid p', l.p_value == null ? '—' : num(l.p_value, 3)]].forEach(function (f) {
      var d = figs.appendChild(el('div'));
      d.appendChild(el('dt', f[0]));
      d.appendChild(el('dd', f[1]));
    });
    var rows = [{ tier: 'all visitors', lift: o }].concat(l.tiers || []);
    table('lift', ['Tier', 'Treated', 'Held out', 'Absolute lift [95 %]', 'Relative lift [95 %]'], rows.map(function (r) {
      var x = r.lift;
      return [{ text: r.tier, cls: 'text' },
        num(x.treated.conversions, 0) + ' / ' + num(x.treated.visitors, 0) + ' (' + pct(x.treated.rate) + ')',
        num(x.holdout.conversions, 0) + ' / ' + num(x.holdout.visitors, 0) + ' (' + pct(x.holdout.rate) + ')',
        ci(x.absolute, pp), ci(x.relative, rel)];
    }), 'No visitor in a CTA test in this period.');
    forest(document.getElementById('lift-plot'), rows.filter(function (r) { return r.lift.absolute.estimate != null; }), pp);
    var cal = document.getElementById('calibration');
    cal.replaceChildren();
    bars(cal, ((l.calibration && l.calibration.tiers) || []).map(function (t) {
      return [t.tier, t.rate || 0, pct(t.rate) + ' of ' + num(t.visitors, 0)];
    }), '#1c7c3a');
  }
  var SEGMENTS = { new: 'New', high_value: 'High value', occasional: 'Occasional', at_risk: 'At risk', lapsed: 'Lapsed' };
  /** The customer book of the last daily refit: segments as bars, the most valuable customers. */
  function customers(c) {
    var hint = document.getElementById('customers-hint'), sm = c.summary;
    if (!c.fitted_at || !sm) {
      hint.textContent = 'No customer book yet: it is built each night from the conversions that carry a value.';
    } else {
      var bg = sm.fit && sm.fit.bg_nbd;
      hint.textContent = 'Built ' + when(c.fitted_at) + ' from ' + num(sm.conversions, 0) + ' valued conversions of ' + num(sm.customers, 0) +
        ' customers. Predicted value: the next ' + num(sm.horizon_days, 0) + ' days' +
        (bg && bg.params ? ', by the BG/NBD and Gamma-Gamma models fitted on them.' : ' — not yet: ' + (bg ? bg.error : 'no fit') + '; segments go by days since the last purchase.') +
        (sm.other_currency_conversions ? ' ' + num(sm.other_currency_conversions, 0) + ' conversions in another currency are not counted.' : '');
    }
    var box = document.getElementById('segments');
    box.replaceChildren();
    bars(box, (c.segments || []).map(function (g) {
      return [SEGMENTS[g.segment] || g.segment, g.customers, num(g.customers, 0) + ' · ' + money(g.value_minor) + ' to date' +
        (g.predicted_minor ? ' · ' + money(g.predicted_minor) + ' predicted' : '')];
    }), '#6b46c1');
    table('customers', ['Customer', 'Segment', 'First channel', 'Stage', 'Value to date', 'Predicted', 'P(alive)', 'Purchase days', 'Last purchase'],
      (c.customers || []).map(function (x) {
        return [{ text: x.visitor_id, cls: 'text' }, { text: SEGMENTS[x.segment] || x.segment, cls: 'text' }, { text: x.first_channel, cls: 'text' },
          { text: x.stage || '—', cls: 'text' }, money(x.value_minor), x.predicted_minor == null ? '—' : money(x.predicted_minor),
          pct(x.p_alive), num(x.purchase_days, 0), when(x.last_purchase)];
      }), 'No customer yet.');
  }
  /** Cohort curves: value to date per customer by month since the first purchase, one line per first channel. */
  function cohorts(c) {
    var list = c.cohorts || [], longest = 0;
    list.forEach(function (k) { longest = Math.max(longest, k.months.length); });
    var labels = [];
    for (var i = 0; i < longest; i++) labels.push('month ' + i);
    chart('chart-cohorts', labels, list.map(function (k) {
      return { label: k.cohort + ' (' + num(k.customers, 0) + ')', data: labels.map(function (_, i) { return k.months[i] ? k.months[i].cumulative_per_customer_minor : null; }) };
    }), money, false, {
      tick: function (l) { return l.replace('month ', 'M'); },
      aria: 'Value per customer after their last observed month: ' + list.map(function (k) {
        var m = k.months[k.months.length - 1];
        return k.cohort + ' ' + money(m ? m.cumulative_per_customer_minor : 0);
      }).join(', '),
    });
    table('cohorts', ['Cohort', 'Customers', 'Value', 'Per customer, first month', 'Per customer, to date'], list.map(function (k) {
      var first = k.months[0], last = k.months[k.months.length - 1];
      return [{ text: k.cohort, cls: 'text' }, num(k.customers, 0), money(k.value_minor),
        money(first ? first.cumulative_per_customer_minor : 0), money(last ? last.cumulative_per_customer_minor : 0)];
    }), 'No valued conversion yet.');
  }
  /** A forest plot in SVG: one row per estimate, its interval as a line, zero dashed. */
  function forest(box, rows, format) {
    box.replaceChildren();
    if (!rows.length) { box.appendChild(el('p', 'Not enough visitors in both arms yet.', 'hint')); return; }
    var NS = 'http://www.w3.org/2000/svg', W = 640, L = 120, R = 20, H = 26, top = 8;
    var lo = 0, hi = 0;
    rows.forEach(function (r) { lo = Math.min(lo, r.lift.absolute.lower); hi = Math.max(hi, r.lift.absolute.upper); });
    if (hi - lo < 1e-9) { lo -= 0.05; hi += 0.05; }
    var x = function (v) { return L + ((v - lo) / (hi - lo)) * (W - L - R); };
    var svg = document.createElementNS(NS, 'svg'), h = top + rows.length * H + 22;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + h);
    function add(tag, attrs, text) {
      var n = document.createElementNS(NS, tag);
      Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
      if (text != null) n.textContent = text;
      return svg.appendChild(n);
    }
    add('line', { x1: x(0), x2: x(0), y1: top - 4, y2: top + rows.length * H, class: 'zero' });
    rows.forEach(function (r, i) {
      var a = r.lift.absolute, y = top + i * H + H / 2;
      add('text', { x: 0, y: y + 4 }, r.tier);
      add('line', { x1: x(a.lower), x2: x(a.upper), y1: y, y2: y, class: 'ci' });
      add('circle', { cx: x(a.estimate), cy: y, r: 5, class: 'est' });
    });
    var ay = top + rows.length * H + 16;
    add('text', { x: x(lo), y: ay, class: 'axis', 'text-anchor': 'start' }, format(lo));
    add('text', { x: x(0), y: ay, class: 'axis', 'text-anchor': 'middle' }, '0');
    add('text', { x: x(hi), y: ay, class: 'axis', 'text-anchor': 'end' }, format(hi));
    box.appendChild(svg);
  }
  function tiers(ids) {
    var sel = form.elements.tier, keep = sel.value;
    sel.replaceChildren(el('option', 'all tiers'));
    sel.firstChild.value = '';
    (ids || []).slice().reverse().forEach(function (id) {
      var o = el('option', id);
      o.value = id;
      sel.appendChild(o);
    });
    sel.value = keep;
  }

  /** The installation check: the tag to copy; waiting, then what the site's pages sent. */
  var installTimer = 0;
  function install(i) {
    document.getElementById('install-tag').textContent = i.script_tag;
    var s = document.getElementById('install-status'), e = i.last_event;
    clearTimeout(installTimer);
    if (!e) {
      s.className = 'waiting';
      s.textContent = 'Waiting for the first event from ' + i.origins.join(', ') +
        '. Open a page of the site with the tag and accept analytics: this turns green when it arrives.';
      installTimer = setTimeout(function () {
        var site = form.elements.site.value.trim();
        allowed(api('/v1/sites/' + encodeURIComponent(site) + '/install', form.elements.token.value))
          .then(function (next) { if (next) install(next); }, function () {});
      }, 3000);
      return;
    }
    var c = e.consent, yes = function (p) { return p + (c[p] ? ' granted' : ' refused'); };
    s.className = 'ok';
    s.textContent = 'Working: ' + e.kind + (e.page ? ' of ' + e.page : '') + ' received ' + when(e.received_at) +
      ', consent: ' + ['analytics', 'personalization', 'marketing'].map(yes).join(', ') + '. ' +
      num(i.events_24h, 0) + ' event(s) from the site’s pages in the last 24 hours.';
  }
  document.getElementById('install-copy').addEventListener('click', function () {
    var text = document.getElementById('install-tag').textContent, b = this;
    navigator.clipboard.writeText(text).then(function () { b.textContent = 'Copied'; }, function () { b.textContent = 'Select and copy the tag'; });
  });

  // Settings: each form PATCHes its own fields of the site; a refusal names
  // its field (`cta.primary.hot.href: …`), shown under the form it belongs to.
  var settings = null;
  function tiersOf(rules) {
    var t = (rules && rules.tiers) || {};
    return Object.keys(t).sort(function (a, b) { return t[a] - t[b]; });
  }
  function input(name, value, attrs) {
    var i = el('input');
    i.name = name;
    i.value = value == null ? '' : String(value);
    Object.keys(attrs || {}).forEach(function (k) { i.setAttribute(k, attrs[k]); });
    return i;
  }
  function labelled(text, control) {
    var l = el('label', text);
    l.appendChild(control);
    return l;
  }
  function ctaRow(list, name, tiers, variants) {
    list.appendChild(el('div', 'CTA “' + name + '”', 'cta-name'));
    tiers.forEach(function (tier) {
      var v = (variants && variants[tier]) || {};
      var row = list.appendChild(el('div', null, 'cta-row'));
      row.dataset.cta = name;
      row.dataset.tier = tier;
      var text = input('text', v.text, { maxlength: '200', 'aria-label': name + ' in ' + tier + ': text' });
      var href = input('href', v.href, { maxlength: '2048', 'aria-label': name + ' in ' + tier + ': link' });
      row.appendChild(el('span', tier, 'tier'));
      row.appendChild(labelled('Text ', text));
      row.appendChild(labelled('Link ', href));
      var preview = row.appendChild(el('a', null, 'cta-preview'));
      preview.setAttribute('aria-label', 'Preview of ' + name + ' in ' + tier);
      var update = function () {
        preview.textContent = text.value || '(the page’s own text)';
        if (href.value) preview.title = href.value; else preview.removeAttribute('title');
      };
      text.addEventListener('input', update);
      href.addEventListener('input', update);
      update();
    });
  }
  function convRow(body, c, stages) {
    var tr = body.appendChild(el('tr'));
    var cells = [
      input('event', c.event, { required: '', maxlength: '100', 'aria-label': 'Event name' }),
      input('currency', c.currency, { maxlength: '3', size: '4', 'aria-label': 'Currency (ISO 4217)' }),
      input('value_property', c.value_property, { maxlength: '64', 'aria-label': 'Value property' }),
      input('max_value', c.max_value, { inputmode: 'decimal', 'aria-label': 'Largest value accepted from browsers' }),
    ];
    var stage = el('select');
    stage.name = 'stage';
    stage.setAttribute('aria-label', 'Stage it enters');
    [''].concat(stages).forEach(function (s) { var o = el('option', s || '—'); o.value = s; stage.appendChild(o); });
    stage.value = c.stage || '';
    cells.push(stage);
    cells.push(input('inherits', c.inherits, { maxlength: '100', 'aria-label': 'Inherits the path of' }));
    var rm = el('button', 'Remove');
    rm.type = 'button';
    rm.addEventListener('click', function () { tr.remove(); });
    cells.push(rm);
    cells.forEach(function (x) { tr.appendChild(el('td')).appendChild(x); });
    tr.dataset.extra = JSON.stringify(c);
  }
  function renderSettings(s) {
    settings = s;
    var c = s.config, rules = s.effective_rules, tiers = tiersOf(rules);
    var g = document.getElementById('set-general').elements;
    g.timezone.value = c.timezone || 'UTC';
    g.retention_days.value = s.retention_days;
    var k = document.getElementById('set-consent').elements;
    k.respect_dnt.checked = !!c.consent.respect_dnt;
    k.cookieless_pageviews.checked = !!c.consent.cookieless_pageviews;
    k.hash_user_ids.checked = !!c.consent.hash_user_ids;
    k.remove.value = (c.consent.sanitise.remove || []).join(', ');
    var list = document.getElementById('cta-list');
    list.replaceChildren();
    Object.keys(c.cta || {}).sort().forEach(function (name) { if (name !== 'holdout_percent') ctaRow(list, name, tiers, c.cta[name]); });
    document.getElementById('set-cta').elements.holdout_percent.value = (c.cta && c.cta.holdout_percent) || 0;
    var t = document.getElementById('conv-table');
    t.replaceChildren();
    var head = t.appendChild(el('thead')).appendChild(el('tr'));
    ['Event', 'Currency', 'Value property', 'Max value', 'Stage', 'Inherits', ''].forEach(function (h) { head.appendChild(el('th', h)); });
    var body = t.appendChild(el('tbody'));
    var stages = ((rules && rules.stages) || []).map(function (x) { return x.id; });
    (c.conversions || []).forEach(function (x) { convRow(body, x, stages); });
    // One click adds a suggested conversion as a row; Save keeps it.
    var hint = document.getElementById('conv-suggest');
    hint.querySelectorAll('button').forEach(function (b) { b.remove(); });
    (s.suggested_conversions || []).forEach(function (x) {
      var b = hint.appendChild(el('button', x.event));
      b.type = 'button';
      b.setAttribute('aria-label', 'Add the conversion ' + x.event);
      b.addEventListener('click', function () { convRow(body, x, stages); b.remove(); });
    });
    hint.hidden = !(s.suggested_conversions || []).length;
    document.querySelectorAll('#h-settings ~ form .field-error').forEach(function (p) { p.hidden = true; });
    var ob = document.getElementById('overrides');
    ob.replaceChildren();
    var oh = ob.appendChild(el('thead')).appendChild(el('tr'));
    ['Source', 'Medium', 'Campaign contains', 'Referrer host', 'Channel', ''].forEach(function (h) { oh.appendChild(el('th', h)); });
    var obody = ob.appendChild(el('tbody'));
    ((c.channels && c.channels.overrides) || []).forEach(function (o) { overrideRow(obody, o); });
    document.getElementById('set-channels').elements.internal_hosts.value = ((c.channels && c.channels.internal_hosts) || []).join(', ');
    document.getElementById('set-webhooks').elements.urls.value = (s.webhooks || []).join('\n');
    deliveries().catch(function () {});
    // The rules in force, as TOML to edit (the collector writes it).
    var f = document.getElementById('set-rules').elements;
    f.text.value = JSON.stringify(rules, null, 2);
    checkRules(false).then(function (r) {
      if (r.ok && r.toml) f.text.value = r.toml;
      showCheck(r);
      document.getElementById('rules-result').hidden = true;
    }, function () {});
  }
  /** The rule editor: the collector checks the file (errors at their line) and scores a journey. */
  function checkRules(journey) {
    var f = document.getElementById('set-rules').elements, site = document.getElementById('controls').elements.site.value.trim();
    var text = f.text.value, body = { text: text, format: text.trim().charAt(0) === '{' ? 'json' : 'toml' };
    if (journey) body.journey = f.journey.value.split(',').map(function (x) { return x.trim(); }).filter(Boolean);
    return api('/v1/sites/' + encodeURIComponent(site) + '/rules/check', document.getElementById('controls').elements.token.value, 'POST', body);
  }
  function showCheck(r) {
    var list = document.getElementById('rules-errors'), result = document.getElementById('rules-result');
    list.replaceChildren();
    list.hidden = r.ok;
    (r.errors || []).forEach(function (e) {
      list.appendChild(el('li', (e.line ? 'line ' + e.line + ': ' : '') + (e.field ? e.field + ': ' : '') + e.rule));
    });
    result.hidden = !r.ok;
    if (r.ok) {
      result.textContent = 'Valid: rules version ' + r.version + ', ' + r.actions.length + ' actions, tiers ' + r.tiers.join(', ') + '.' +
        (r.score ? ' This journey scores ' + num(r.score.score, 1) + ' (' + r.score.tier + ').' : '');
      var dl = document.getElementById('actions');
      dl.replaceChildren();
      r.actions.forEach(function (a) { var o = el('option'); o.value = a; dl.appendChild(o); });
    }
    return r;
  }
  document.getElementById('rules-check').addEventListener('click', function () {
    checkRules(true).then(showCheck, fail);
  });
  document.getElementById('set-rules').addEventListener('submit', function (e) {
    e.preventDefault();
    var form = e.target;
    checkRules(false).then(showCheck).then(function (r) { if (r.ok) save(form, { rules: r.document }); }, fail);
  });

  var OVERRIDE_FIELDS = ['source', 'medium', 'campaign_contains', 'referrer_host'];
  function overrideRow(body, o) {
    var tr = body.appendChild(el('tr'));
    OVERRIDE_FIELDS.forEach(function (k) {
      tr.appendChild(el('td')).appendChild(input(k, o[k], { maxlength: '200', 'aria-label': k.replace('_', ' ') }));
    });
    tr.appendChild(el('td')).appendChild(input('channel', o.channel, { list: 'channel-names', required: '', 'aria-label': 'channel' }));
    var rm = el('button', 'Remove');
    rm.type = 'button';
    rm.addEventListener('click', function () { tr.remove(); });
    tr.appendChild(el('td')).appendChild(rm);
  }
  function deliveries() {
    var site = document.getElementById('controls').elements.site.value.trim(), token = document.getElementById('controls').elements.token.value;
    return api('/v1/sites/' + encodeURIComponent(site) + '/webhooks/deliveries', token).then(function (d) {
      table('deliveries', ['When', 'URL', 'Event', 'Attempt', 'Status'], d.deliveries.map(function (x) {
        var ok = x.status >= 200 && x.status < 300;
        return [when(x.at), { text: x.url, cls: 'text' }, x.event, num(x.attempt, 0),
          { text: x.status ? x.status + (ok ? ' delivered' : ' refused') : (x.error || 'not sent'), cls: 'text' }];
      }), 'No delivery yet.');
    });
  }
  document.getElementById('override-add').addEventListener('click', function () {
    overrideRow(document.querySelector('#overrides tbody'), {});
  });
  document.getElementById('set-channels').addEventListener('submit', function (e) {
    e.preventDefault();
    var overrides = [];
    document.querySelectorAll('#overrides tbody tr').forEach(function (tr) {
      var o = {};
      tr.querySelectorAll('input').forEach(function (i) { if (i.value.trim()) o[i.name] = i.value.trim(); });
      overrides.push(o);
    });
    var hosts = e.target.elements.internal_hosts.value.split(',').map(function (x) { return x.trim(); }).filter(Boolean);
    save(e.target, { channels: { overrides: overrides, internal_hosts: hosts } });
  });
  document.getElementById('set-webhooks').addEventListener('submit', function (e) {
    e.preventDefault();
    save(e.target, { webhooks: e.target.elements.urls.value.split('\n').map(function (x) { return x.trim(); }).filter(Boolean) });
  });
  document.getElementById('webhook-test').addEventListener('click', function () {
    var form = document.getElementById('set-webhooks'), out = form.querySelector('.saved'), err = form.querySelector('.field-error');
    var site = document.getElementById('controls').elements.site.value.trim();
    out.textContent = '';
    err.hidden = true;
    api('/v1/sites/' + encodeURIComponent(site) + '/webhooks/test', document.getElementById('controls').elements.token.value, 'POST', {})
      .then(function (r) {
        var n = r.deliveries.filter(function (d) { return d.delivered; }).length;
        out.textContent = 'Test delivered to ' + n + ' of ' + r.deliveries.length + ' URL(s).';
        return deliveries();
      }, function (e) { err.textContent = e.message; err.hidden = false; });
  });
  document.getElementById('set-spend').addEventListener('submit', function (e) {
    e.preventDefault();
    var form = e.target, out = form.querySelector('.saved'), err = form.querySelector('.field-error');
    var c = document.getElementById('controls').elements, file = form.elements.file.files[0];
    out.textContent = '';
    err.hidden = true;
    if (!file) return;
    file.text().then(function (text) {
      return fetch('/v1/spend?site=' + encodeURIComponent(c.site.value.trim()), {
        method: 'POST', credentials: 'omit', cache: 'no-store', body: text,
        headers: { authorization: 'Bearer ' + c.token.value, 'content-type': 'text/csv' },
      });
    }).then(function (r) {
      return r.json().then(function (b) {
        if (!r.ok) throw new Error((b.error && b.error.message) || 'HTTP ' + r.status);
        out.textContent = 'Uploaded ' + num(b.rows, 0) + ' day(s) of spend, ' + money(b.amount_minor) + ' in all.';
      });
    }).catch(function (e) { err.textContent = e.message; err.hidden = false; });
  });

  /** The input a refusal names (`cta.primary.hot.href`, `conversions[1].stage`, `timezone`), in its form. */
  function fieldInput(form, field) {
    var m;
    if (field === 'cta.holdout_percent') return form.elements.holdout_percent;
    if ((m = /^cta\.([^.]+)\.([^.]+)(?:\.(text|href))?/.exec(field))) {
      var row = form.querySelector('.cta-row[data-cta="' + CSS.escape(m[1]) + '"][data-tier="' + CSS.escape(m[2]) + '"]');
      return row && row.querySelector('input[name=' + (m[3] || 'text') + ']');
    }
    if ((m = /^conversions\[(\d+)\](?:\.([a-z_]+))?/.exec(field))) {
      var tr = form.querySelectorAll('#conv-table tbody tr')[Number(m[1])];
      return tr && (tr.querySelector('[name=' + (m[2] || 'event') + ']') || tr.querySelector('input'));
    }
    if (/^consent\.sanitise/.test(field)) return form.elements.remove;
    if ((m = /^consent\.([a-z_]+)/.exec(field))) return form.elements[m[1]];
    if (/^webhooks/.test(field)) return form.elements.urls;
    if (/^channels/.test(field)) return form.querySelector('#overrides input') || form.elements.internal_hosts;
    return form.elements[field] || null;
  }
  var errorIds = 0;
  function save(form, body) {
    var out = form.querySelector('.saved'), err = form.querySelector('.field-error');
    out.textContent = '';
    err.hidden = true;
    if (!err.id) err.id = 'field-error-' + (++errorIds);
    form.querySelectorAll('[aria-invalid]').forEach(function (i) { i.removeAttribute('aria-invalid'); i.removeAttribute('aria-describedby'); });
    var site = form.ownerDocument.getElementById('controls').elements.site.value.trim();
    api('/v1/sites/' + encodeURIComponent(site), document.getElementById('controls').elements.token.value, 'PATCH', body)
      .then(function (s) { renderSettings(s); out.textContent = 'Saved.'; }, function (e) {
        err.textContent = e.message;
        err.hidden = false;
        // Beside its input: marked invalid, described by the message, focused.
        var at = fieldInput(form, e.message.split(': ')[0]);
        if (at) {
          at.setAttribute('aria-invalid', 'true');
          at.setAttribute('aria-describedby', err.id);
          at.focus();
        }
      });
  }
  document.getElementById('set-general').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = e.target.elements;
    save(e.target, { timezone: f.timezone.value.trim(), retention_days: Number(f.retention_days.value) });
  });
  document.getElementById('set-consent').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = e.target.elements, c = settings.config.consent;
    var remove = f.remove.value.split(',').map(function (x) { return x.trim(); }).filter(Boolean);
    save(e.target, { consent: { respect_dnt: f.respect_dnt.checked, cookieless_pageviews: f.cookieless_pageviews.checked,
      hash_user_ids: f.hash_user_ids.checked, sanitise: { remove: remove, keep: c.sanitise.keep || [] } } });
  });
  document.getElementById('cta-add').addEventListener('click', function () {
    var f = document.getElementById('set-cta').elements, name = f.new_cta.value.trim();
    if (!name || !f.new_cta.checkValidity()) { f.new_cta.reportValidity(); return; }
    ctaRow(document.getElementById('cta-list'), name, tiersOf(settings.effective_rules), {});
    f.new_cta.value = '';
  });
  document.getElementById('set-cta').addEventListener('submit', function (e) {
    e.preventDefault();
    var cta = {};
    document.querySelectorAll('#cta-list .cta-row').forEach(function (row) {
      var text = row.querySelector('input[name=text]').value.trim(), href = row.querySelector('input[name=href]').value.trim();
      if (!text && !href) return;
      var v = {};
      if (text) v.text = text;
      if (href) v.href = href;
      (cta[row.dataset.cta] = cta[row.dataset.cta] || {})[row.dataset.tier] = v;
    });
    var share = e.target.elements.holdout_percent.value.trim();
    if (share !== '' && share !== '0') cta.holdout_percent = Number(share);
    save(e.target, { cta: Object.keys(cta).length ? cta : null });
  });
  document.getElementById('conv-add').addEventListener('click', function () {
    var stages = ((settings.effective_rules && settings.effective_rules.stages) || []).map(function (x) { return x.id; });
    convRow(document.querySelector('#conv-table tbody'), {}, stages);
  });
  document.getElementById('set-conversions').addEventListener('submit', function (e) {
    e.preventDefault();
    var list = [];
    document.querySelectorAll('#conv-table tbody tr').forEach(function (tr) {
      // What the form does not show (value_from, inherit_window_days, …) is kept as it was.
      var c = JSON.parse(tr.dataset.extra || '{}');
      tr.querySelectorAll('input, select').forEach(function (i) {
        if (i.value.trim()) c[i.name] = i.value.trim(); else delete c[i.name];
      });
      list.push(c);
    });
    save(e.target, { conversions: list });
  });

  function date(t) { return t ? t.slice(0, 16).replace('T', ' ') + ' UTC' : '—'; }
  function revokeButton(label, path) {
    var b = el('button', 'Revoke');
    b.type = 'button';
    b.setAttribute('aria-label', 'Revoke ' + label);
    b.addEventListener('click', function () {
      api(path, form.elements.token.value, 'DELETE').then(load, fail);
    });
    return b;
  }
  function access(site, t, sh) {
    var base = '/v1/sites/' + encodeURIComponent(site);
    table('tokens', ['Name', 'Role', 'Created', 'Expires', 'Last used', 'Revoked', ''], t.tokens.map(function (x) {
      var td = el('td');
      if (!x.revoked_at) td.appendChild(revokeButton(x.name, base + '/tokens/' + encodeURIComponent(x.id)));
      return [{ text: x.name, cls: 'text' }, x.role, date(x.created_at), date(x.expires_at), date(x.last_used_at),
        date(x.revoked_at), td];
    }), 'No token yet.');
    table('shares', ['Name', 'Created', 'Expires', 'Revoked', ''], sh.shares.map(function (x) {
      var td = el('td');
      if (!x.revoked_at) td.appendChild(revokeButton(x.name, base + '/shares/' + encodeURIComponent(x.id)));
      return [{ text: x.name, cls: 'text' }, date(x.created_at), date(x.expires_at), date(x.revoked_at), td];
    }), 'No share link yet.');
  }
  function reveal(label, value) {
    document.getElementById('secret-label').textContent = label;
    document.getElementById('secret-value').textContent = value;
    document.getElementById('secret').hidden = false;
  }
  function fail(e) {
    status.className = 'error';
    status.textContent = e.message;
    if (e.status === 401) {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (x) {}
    }
  }

  /** `live`: the 10-second refresh, which leaves the settings forms as they are. */
  function load(live) {
    live = live === true;
    clearTimeout(timer);
    var f = form.elements, site = f.site.value.trim(), token = f.token.value;
    if (!site || !token) return;
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) {}
    var q = 'site=' + encodeURIComponent(site);
    var preset = f.period.value === 'custom'
      ? '&period=custom&from_date=' + (f.from.value || f.to.value) + '&to_date=' + (f.to.value || f.from.value)
      : '&period=' + f.period.value;
    if (f.period.value === 'custom' && !f.from.value && !f.to.value) preset = '&period=30d';
    var base = '/v1/sites/' + encodeURIComponent(site);
    var period = '';
    status.className = '';
    status.textContent = 'Loading…';
    // The series resolves the period in the site's time zone; every other
    // report is then asked for exactly that window.
    allowed(api('/v1/reports/series?' + q + preset + '&model=' + encodeURIComponent(f.model.value), token)).then(function (s) {
      if (s) period = '&from=' + encodeURIComponent(s.from) + '&to=' + encodeURIComponent(s.to);
      return Promise.all([s,
        allowed(api('/v1/reports/attribution?' + q + period, token)),
        allowed(api('/v1/reports/kpis?' + q + period + '&model=' + encodeURIComponent(f.model.value), token)),
        allowed(api('/v1/leads?' + q + (f.tier.value ? '&tier=' + encodeURIComponent(f.tier.value) : ''), token)),
        allowed(api('/v1/reports/paths?' + q + period, token)),
        allowed(api(base + '/tokens', token)),
        allowed(api(base + '/shares', token)),
        allowed(api(base + '/install', token)),
        allowed(api('/v1/reports/stages?' + q + period, token)),
        live ? null : allowed(api(base, token)),
        allowed(api('/v1/reports/lift?' + q + period, token)),
        allowed(api('/v1/reports/customers?' + q + '&limit=20', token)),
        allowed(api('/v1/reports/cohorts?' + q + '&by=first_channel', token)),
      ]);
    }).then(function (all) {
      var s = all[0], r = all.slice(1);
      if (!r[0] && !r[2] && !r[4]) throw new Error('This token may not read this site’s reports.');
      show('aggregates', !!r[0]);
      show('leads', !!r[2]);
      show('tokens', !!(r[4] && r[5]));
      show('install', !!r[6]);
      if (!live) show('config', !!r[8]);
      if (r[8]) renderSettings(r[8]);
      if (r[6]) install(r[6]);
      if (s) setCurrency(s.currency, s.currency_digits);
      if (r[1]) setCurrency(r[1].currency, r[1].currency_digits);
      if (s) series(s);
      if (r[0]) { attribution(r[0]); modelBars(r[0]); }
      if (r[7] || r[0]) stages(r[7]);
      if (r[1]) { overview(r[1]); channels(r[1]); }
      if (r[2]) { tiers(r[2].tiers); leads(r[2]); }
      if (r[3]) paths(r[3]);
      if (r[9]) lift(r[9]);
      show('customers', !!r[10]);
      if (r[10]) customers(r[10]);
      if (r[11]) cohorts(r[11]);
      if (r[4] && r[5]) access(site, r[4], r[5]);
      var role = document.getElementById('role');
      role.hidden = false;
      role.textContent = r[4] ? 'Signed in as owner: everything on this site.'
        : r[2] ? 'Signed in as analyst: reports and leads, read-only.'
        : 'Shared view: aggregates only.';
      status.textContent = 'Site ' + site + ' as of ' + new Date().toLocaleTimeString('en') + '.';
    }).catch(fail).then(function () {
      if (f.live.checked) timer = setTimeout(function () { load(true); }, 10000);
    });
  }

  document.getElementById('new-token').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = e.target.elements, site = form.elements.site.value.trim();
    var body = { name: f.name.value.trim(), role: f.role.value };
    if (f.expires.value) body.expires_at = f.expires.value + 'T23:59:59Z';
    api('/v1/sites/' + encodeURIComponent(site) + '/tokens', form.elements.token.value, 'POST', body).then(function (t) {
      reveal('New ' + t.role + ' token “' + t.name + '”:', t.token);
      f.name.value = '';
      load();
    }, fail);
  });
  document.getElementById('new-share').addEventListener('click', function () {
    var f = document.getElementById('new-token').elements, site = form.elements.site.value.trim();
    var body = { name: f.name.value.trim() || 'share link' };
    if (f.expires.value) body.expires_at = f.expires.value + 'T23:59:59Z';
    api('/v1/sites/' + encodeURIComponent(site) + '/shares', form.elements.token.value, 'POST', body).then(function (sh) {
      reveal('New share link:', sh.url);
      load();
    }, fail);
  });

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    load();
  });
  form.elements.live.addEventListener('change', load);
  form.elements.period.addEventListener('change', function () {
    var custom = form.elements.period.value === 'custom';
    document.querySelectorAll('label.custom').forEach(function (l) { l.hidden = !custom; });
    if (!custom) load();
  });
  ['from', 'to'].forEach(function (k) { form.elements[k].addEventListener('change', load); });
  var params = new URLSearchParams(location.search);
  if (params.get('site')) form.elements.site.value = params.get('site');
  try { form.elements.token.value = sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) {}
  // A share link: its secret becomes this tab's token and leaves the address bar.
  var share = /^#share=(mfs_[0-9a-f]+)$/.exec(location.hash);
  if (share) {
    form.elements.token.value = share[1];
    history.replaceState(null, '', location.pathname + location.search);
  }
  if (form.elements.token.value) load();
})();
