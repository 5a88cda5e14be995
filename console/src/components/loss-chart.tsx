/**
 * The live loss chart: train loss per step and held-out eval loss where it was measured, drawn with uPlot.
 * The chart is redrawn in place as points arrive (setData), not rebuilt. The figure's caption repeats the
 * latest numbers in text for screen readers; `data-points` counts the plotted steps.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { formatLoss } from '../lib/format';

export interface LossPoint {
  step: number;
  loss: number | null;
  evalLoss: number | null;
}

function toData(points: readonly LossPoint[]): uPlot.AlignedData {
  return [points.map((p) => p.step), points.map((p) => p.loss), points.map((p) => p.evalLoss)];
}

export function LossChart({ points }: { points: readonly LossPoint[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current!;
    const width = () => Math.max(280, Math.min(900, el.clientWidth || 640));
    plot.current = new uPlot(
      {
        width: width(),
        height: 280,
        scales: { x: { time: false } },
        axes: [{ label: 'step' }, { label: 'loss' }],
        series: [
          { label: 'step' },
          { label: 'train loss', stroke: '#1f5fbf', width: 2, spanGaps: true },
          {
            label: 'eval loss',
            stroke: '#b3261e',
            width: 2,
            spanGaps: true,
            points: { show: true, size: 6 },
          },
        ],
      },
      toData(points),
      el,
    );
    const onResize = () => plot.current?.setSize({ width: width(), height: 280 });
    addEventListener('resize', onResize);
    return () => {
      removeEventListener('resize', onResize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData(toData(points));
  }, [points]);

  const last = points[points.length - 1];
  const lastEval = [...points].reverse().find((p) => p.evalLoss != null);
  return (
    <figure class="chart">
      <div ref={box} data-testid="loss-chart" data-points={points.length} />
      <figcaption>
        {points.length === 0
          ? 'No steps yet.'
          : `${points.length} step(s); latest train loss ${formatLoss(last?.loss)} at step ${last?.step}` +
            (lastEval ? `, latest eval loss ${formatLoss(lastEval.evalLoss)} at step ${lastEval.step}` : '')}
      </figcaption>
    </figure>
  );
}
