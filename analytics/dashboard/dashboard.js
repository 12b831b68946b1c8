// The dashboard's only script: polls the JSON endpoints of the analytics router and redraws.
// Plain browser JavaScript over Chart.js (served locally), no build step; an ES module (its own scope).
const params = new URLSearchParams(location.search);
const intervalMs = Math.max(500, Number(params.get('interval')) || 3000);
const latencyWindow = params.get('since') || '1h';
const COLORS = { stream: '#1f6fb4', batch: '#c2410c', cdc: '#15803d', bars: '#0f766e', day: '#6d28d9' };
const PATHS = ['stream', 'batch', 'cdc'];
const gbp = new Intl.NumberFormat('en-GB', {
  style: 'currency',
  currency: 'GBP',
  maximumFractionDigits: 0,
});
const gbp2 = new Intl.NumberFormat('en-GB', { style: 'currency', currency: 'GBP' });
const int = new Intl.NumberFormat('en-GB');
const $ = (id) => document.getElementById(id);

Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", sans-serif';

function formatMs(ms) {
  if (ms === null || ms === undefined) return '-';
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  if (Math.abs(ms) < 60000) return `${(ms / 1000).toFixed(Math.abs(ms) < 10000 ? 2 : 1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}
const clock = (t) => new Date(t).toLocaleTimeString('en-GB', { hour12: false });

const barOptions = (horizontal) => ({
  indexAxis: horizontal ? 'y' : 'x',
  plugins: { legend: { display: false } },
  scales: {
    [horizontal ? 'x' : 'y']: { beginAtZero: true, ticks: { callback: (v) => gbp.format(v) } },
    [horizontal ? 'y' : 'x']: { ticks: { autoSkip: !horizontal } },
  },
});

const charts = {
  rate: new Chart($('chart-rate'), {
    type: 'line',
    data: {
      labels: [],
      datasets: [
        {
          label: 'lines/s',
          data: [],
          borderColor: COLORS.stream,
          backgroundColor: 'rgba(31,111,180,.15)',
          fill: true,
          pointRadius: 0,
          tension: 0.2,
        },
      ],
    },
    options: {
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true }, x: { ticks: { maxTicksLimit: 8 } } },
    },
  }),
  latency: new Chart($('chart-latency'), {
    type: 'line',
    data: {
      datasets: PATHS.map((p) => ({
        label: p,
        data: [],
        borderColor: COLORS[p],
        backgroundColor: COLORS[p],
        stepped: true,
        pointRadius: 0,
        borderWidth: 2,
      })),
    },
    options: {
      parsing: false,
      scales: {
        x: {
          type: 'logarithmic',
          title: { display: true, text: 'delay (log scale)' },
          ticks: {
            callback: (v) => ([1, 10, 100, 1000, 10000, 100000, 1000000].includes(v) ? formatMs(v) : ''),
          },
        },
        y: { min: 0, max: 100, ticks: { callback: (v) => `${v}%` } },
      },
    },
  }),
  // Per hop p50 and p99 in seconds: the cdc path is seconds to a minute, so a linear axis reads best.
  cdc: new Chart($('chart-cdc'), {
    type: 'bar',
    data: {
      labels: [],
      datasets: [
        { label: 'p50', data: [], backgroundColor: COLORS.cdc },
        { label: 'p99', data: [], backgroundColor: '#86efac' },
      ],
    },
    options: {
      indexAxis: 'y',
      scales: { x: { beginAtZero: true, title: { display: true, text: 'seconds' } } },
    },
  }),
  day: new Chart($('chart-day'), {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'net revenue', data: [], backgroundColor: COLORS.day }] },
    options: barOptions(false),
  }),
  country: new Chart($('chart-country'), {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'net revenue', data: [], backgroundColor: COLORS.bars }] },
    options: barOptions(true),
  }),
  products: new Chart($('chart-products'), {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'net revenue', data: [], backgroundColor: COLORS.stream }] },
    options: barOptions(true),
  }),
};

function show(cardId, chart, hasData) {
  $(cardId).classList.toggle('is-empty', !hasData);
  chart.update();
}

// With RP_API_KEY set, open the page as /dashboard?apiKey=K; the key stays in this tab only.
const keyFromUrl = new URLSearchParams(location.search).get('apiKey');
if (keyFromUrl) sessionStorage.setItem('rp-api-key', keyFromUrl);
const apiKey = sessionStorage.getItem('rp-api-key');

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store', headers: apiKey ? { 'x-api-key': apiKey } : {} });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

function drawRate(rate) {
  const points = rate.points || [];
  charts.rate.data.labels = points.map(([t]) => clock(t));
  charts.rate.data.datasets[0].data = points.map(([, v]) => Math.round(v * 10) / 10);
  $('kpi-rate').textContent = int.format(Math.round(rate.current || 0));
  $('kpi-rate-source').textContent =
    rate.source === 'api' ? 'as the API accepts them' : 'from the warehouse (lags the stream)';
  show(
    'card-rate',
    charts.rate,
    points.some(([, v]) => v > 0),
  );
}

function hopRow(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = c;
    tr.append(td);
  }
  return tr;
}
const hopName = (h) => (h.hop === 'total' ? `TOTAL ${h.from} → ${h.to}` : `${h.from} → ${h.to}`);
const figures = (h) => [
  int.format(h.count),
  formatMs(h.p50),
  formatMs(h.p90),
  formatMs(h.p99),
  formatMs(h.max),
];

function drawCdc(report) {
  const hops = report.hops.filter((h) => h.path === 'cdc');
  charts.cdc.data.labels = hops.map(hopName);
  charts.cdc.data.datasets[0].data = hops.map((h) => (h.p50 ?? 0) / 1000);
  charts.cdc.data.datasets[1].data = hops.map((h) => (h.p99 ?? 0) / 1000);
  $('cdc-table').tBodies[0].replaceChildren(...hops.map((h) => hopRow([hopName(h), ...figures(h)])));
  const total = hops.find((h) => h.hop === 'total');
  $('kpi-cdc').textContent = `${formatMs(total?.p50 ?? null)} / ${formatMs(total?.p99 ?? null)}`;
  show(
    'card-cdc',
    charts.cdc,
    hops.some((h) => h.count > 0),
  );
}

function drawLatency(report) {
  for (const [i, path] of PATHS.entries()) {
    charts.latency.data.datasets[i].data = (report.cdf[path] || []).map(([ms, f]) => ({
      x: Math.max(1, ms),
      y: f * 100,
    }));
  }
  // The cdc hops have their own panel (drawCdc); this table compares the invoice paths.
  const rows = report.hops
    .filter((h) => h.path !== 'cdc')
    .map((h) => hopRow([h.path, hopName(h), ...figures(h)]));
  $('latency-table').tBodies[0].replaceChildren(...rows);
  const total = (p) => report.hops.find((h) => h.path === p && h.hop === 'total');
  $('kpi-latency').textContent =
    `${formatMs(total('stream')?.p50 ?? null)} / ${formatMs(total('batch')?.p50 ?? null)}`;
  show(
    'card-latency',
    charts.latency,
    report.hops.some((h) => h.count > 0),
  );
}

function drawSales(summary, byDay, byCountry, top) {
  $('kpi-lines').textContent = int.format(summary.factRows);
  $('kpi-revenue').textContent = gbp.format(Number(summary.revenue));
  $('kpi-purchases').textContent = int.format(summary.purchases);
  $('kpi-customers').textContent = int.format(summary.customersBuying);
  $('kpi-basket').textContent = gbp2.format(Number(summary.averageBasket));
  $('kpi-cancel').textContent = `${(summary.cancellationRate * 100).toFixed(1)}%`;

  charts.day.data.labels = byDay.days.map((d) => d.day);
  charts.day.data.datasets[0].data = byDay.days.map((d) => Number(d.revenue));
  show('card-day', charts.day, byDay.days.length > 0);

  charts.country.data.labels = byCountry.countries.map((c) => c.country);
  charts.country.data.datasets[0].data = byCountry.countries.map((c) => Number(c.revenue));
  show('card-country', charts.country, byCountry.countries.length > 0);

  charts.products.data.labels = top.products.map((p) =>
    `${p.stockCode} ${p.description ?? ''}`.trim().slice(0, 48),
  );
  charts.products.data.datasets[0].data = top.products.map((p) => Number(p.revenue));
  show('card-products', charts.products, top.products.length > 0);
}

let updates = 0;
async function refresh() {
  const status = $('status');
  try {
    const [rate, latency, summary, byDay, byCountry, top] = await Promise.all([
      getJson('/stats/sales/rate?seconds=120'),
      getJson(`/stats/latency?since=${encodeURIComponent(latencyWindow)}`),
      getJson('/stats/sales/summary'),
      getJson('/stats/sales/by-day?days=60'),
      getJson('/stats/sales/by-country?limit=12'),
      getJson('/stats/sales/top-products?limit=10'),
    ]);
    drawRate(rate);
    drawLatency(latency);
    drawCdc(latency);
    drawSales(summary, byDay, byCountry, top);
    updates += 1;
    const marts = summary.refreshedAt ? `marts refreshed ${clock(summary.refreshedAt)}` : 'no load yet';
    status.textContent = `updated ${clock(Date.now())} · ${marts} · latency window ${latencyWindow}`;
    status.classList.remove('error');
  } catch (err) {
    status.textContent = `cannot reach the stats endpoints (${err.message}); retrying`;
    status.classList.add('error');
  } finally {
    window.dashboard.updates = updates;
    setTimeout(refresh, intervalMs);
  }
}

// Exposed for tests and for curious users in the console.
window.dashboard = { charts, updates };
refresh();
