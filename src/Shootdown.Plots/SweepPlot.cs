namespace Shootdown.Reports;

/// <summary>`shootdown sweep plot`: a metric against a key, one line per group (policy by default).</summary>
public static class SweepPlot
{
    /// <summary>Writes one line per (label, xs, ys) to <paramref name="path"/> (.png or .svg).</summary>
    public static void Write(IReadOnlyList<(string Label, double[] Xs, double[] Ys)> lines, string xLabel, string yLabel, string path)
    {
        var plt = new ScottPlot.Plot();
        foreach (var (label, xs, ys) in lines)
        {
            var s = plt.Add.Scatter(xs, ys);
            s.LegendText = label;
            s.MarkerSize = 6;
        }
        plt.Title($"{yLabel} against {xLabel}");
        plt.XLabel(xLabel);
        plt.YLabel(yLabel);
        plt.ShowLegend();
        if (path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
        {
            plt.SaveSvg(path, Plots.Width, Plots.Height);
        }
        else
        {
            plt.SavePng(path, Plots.Width, Plots.Height);
        }
    }
}
