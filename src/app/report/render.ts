// Vega-Lite spec -> SVG (vega's headless renderer, no browser, no network) ->
// PNG (resvg). Both libraries load on first use, so importing the report
// module stays cheap.
import type { ChartSpec } from './charts.js';

export interface RenderedChart {
  svg: string;
  png: Buffer;
  width: number;
  height: number;
}

export async function chartToSvg(spec: ChartSpec): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vl.compile(spec as never).spec;
  // no loader is needed: every spec carries its data inline
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterises an SVG at `scale` times its size (2 = crisp on high-density screens). */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const r = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return r.render().asPng();
}

export async function renderChart(spec: ChartSpec, scale = 2): Promise<RenderedChart> {
  const svg = await chartToSvg(spec);
  const m = /<svg[^>]*\bwidth="([\d.]+)"[^>]*\bheight="([\d.]+)"/.exec(svg);
  return { svg, png: await svgToPng(svg, scale), width: m ? Number(m[1]) : 0, height: m ? Number(m[2]) : 0 };
}
