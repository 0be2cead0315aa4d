using System.Globalization;
using Shootdown.Hardware;

namespace Shootdown.Reports;

/// <summary>A time-series CSV (as `run --timeseries` writes it) read back: columns by name.</summary>
public sealed class SeriesTable
{
    private SeriesTable(string label, Dictionary<string, double[]> columns)
    {
        Label = label;
        Columns = columns;
    }

    public string Label { get; }

    public Dictionary<string, double[]> Columns { get; }

    public double[] this[string name] => Columns.TryGetValue(name, out double[]? v)
        ? v
        : throw new ConfigException($"time series '{Label}' has no column '{name}'");

    public double IntervalS => Columns["time_s"].Length > 1 ? Columns["time_s"][1] - Columns["time_s"][0] : 0.1;

    public static SeriesTable Parse(string label, string csv)
    {
        string[] lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length < 2)
        {
            throw new ConfigException($"time series '{label}' is empty or not a CSV written by `shootdown run --timeseries`");
        }
        string[] header = lines[0].Split(',');
        if (!header.Contains("time_s") || !header.Contains("interrupts"))
        {
            throw new ConfigException($"time series '{label}' lacks the time_s/interrupts columns of `shootdown run --timeseries`");
        }
        var cols = header.ToDictionary(h => h, _ => new double[lines.Length - 1], StringComparer.Ordinal);
        for (int i = 1; i < lines.Length; i++)
        {
            string[] f = lines[i].Split(',');
            if (f.Length != header.Length)
            {
                throw new ConfigException($"time series '{label}', line {i + 1}: {f.Length} fields, expected {header.Length}");
            }
            for (int c = 0; c < header.Length; c++)
            {
                if (!double.TryParse(f[c], NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
                {
                    throw new ConfigException($"time series '{label}', line {i + 1}: '{f[c]}' is not a number");
                }
                cols[header[c]][i - 1] = v;
            }
        }
        return new SeriesTable(label, cols);
    }
}

/// <summary>PNG and SVG plots (ScottPlot) of one or more runs' time series.</summary>
public static class Plots
{
    public const int Width = 1200;
    public const int Height = 600;

    /// <summary>
    /// Writes interrupts/s, reclaim rates and free memory plots into <paramref name="dir"/>, and the
    /// page faults per second (the readers' progress) when every run's series has them; returns the files.
    /// </summary>
    public static IReadOnlyList<string> WriteAll(IReadOnlyList<SeriesTable> runs, string dir)
    {
        if (runs.Count == 0)
        {
            throw new ConfigException("no time series to plot");
        }
        Directory.CreateDirectory(dir);
        var files = new List<string>();
        files.AddRange(Save(InterruptsPlot(runs), Path.Combine(dir, "interrupts")));
        files.AddRange(Save(ReclaimPlot(runs), Path.Combine(dir, "reclaim")));
        files.AddRange(Save(FreeMemoryPlot(runs[0]), Path.Combine(dir, "free-memory")));
        if (runs.All(t => t.Columns.ContainsKey("pgfault")))
        {
            files.AddRange(Save(FaultsPlot(runs), Path.Combine(dir, "faults")));
        }
        return files;
    }

    private static double[] PerSecond(SeriesTable t, string col) => t[col].Select(v => v / t.IntervalS).ToArray();

    public static ScottPlot.Plot InterruptsPlot(IReadOnlyList<SeriesTable> runs) =>
        PerRunRatePlot(runs, "interrupts", "Interrupts per second (TLB shootdowns + timer), as vmstat's \"in\"", "interrupts / s");

    /// <summary>
    /// The workload's page faults per second: the readers' progress, which stops while reclaim
    /// scans pages no scan has seen yet (README, "Reclaim runs in waves").
    /// </summary>
    public static ScottPlot.Plot FaultsPlot(IReadOnlyList<SeriesTable> runs) =>
        PerRunRatePlot(runs, "pgfault", "Page faults per second (the readers' progress; each fault maps up to 16 pages)", "faults / s");

    /// <summary>One line per run: <paramref name="column"/>'s count per interval as a rate per second.</summary>
    private static ScottPlot.Plot PerRunRatePlot(IReadOnlyList<SeriesTable> runs, string column, string title, string yLabel)
    {
        var plt = new ScottPlot.Plot();
        foreach (SeriesTable t in runs)
        {
            var s = plt.Add.Scatter(t["time_s"], PerSecond(t, column));
            s.LegendText = t.Label;
            s.MarkerSize = 0;
        }
        plt.Title(title);
        plt.XLabel("simulated time (s)");
        plt.YLabel(yLabel);
        plt.ShowLegend();
        return plt;
    }

    public static ScottPlot.Plot ReclaimPlot(IReadOnlyList<SeriesTable> runs)
    {
        var plt = new ScottPlot.Plot();
        foreach (SeriesTable t in runs)
        {
            var k = plt.Add.Scatter(t["time_s"], PerSecond(t, "pgsteal_kswapd"));
            k.LegendText = $"{t.Label}: kswapd";
            k.MarkerSize = 0;
            var d = plt.Add.Scatter(t["time_s"], PerSecond(t, "pgsteal_direct"));
            d.LegendText = $"{t.Label}: direct reclaim";
            d.MarkerSize = 0;
        }
        plt.Title("Pages reclaimed per second");
        plt.XLabel("simulated time (s)");
        plt.YLabel("pages / s");
        plt.ShowLegend();
        return plt;
    }

    public static ScottPlot.Plot FreeMemoryPlot(SeriesTable t)
    {
        var plt = new ScottPlot.Plot();
        foreach (string col in t.Columns.Keys.Where(c => c.StartsWith("free_pages_node", StringComparison.Ordinal)))
        {
            var s = plt.Add.Scatter(t["time_s"], t[col]);
            s.LegendText = col.Replace("free_pages_", "free pages ", StringComparison.Ordinal);
            s.MarkerSize = 0;
        }
        foreach (string w in new[] { "wmark_min", "wmark_low", "wmark_high" })
        {
            if (t.Columns.TryGetValue(w, out double[]? v) && v.Length > 0)
            {
                var line = plt.Add.HorizontalLine(v[0]);
                line.LegendText = w.Replace("wmark_", "watermark ", StringComparison.Ordinal);
                line.LinePattern = ScottPlot.LinePattern.Dashed;
            }
        }
        plt.Title($"Free memory per node against the watermarks ({t.Label})");
        plt.XLabel("simulated time (s)");
        plt.YLabel("free pages");
        plt.ShowLegend();
        return plt;
    }

    private static string[] Save(ScottPlot.Plot plt, string basePath)
    {
        string png = basePath + ".png", svg = basePath + ".svg";
        plt.SavePng(png, Width, Height);
        plt.SaveSvg(svg, Width, Height);
        return [png, svg];
    }
}
