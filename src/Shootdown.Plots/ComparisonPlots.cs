namespace Shootdown.Reports;

/// <summary>`compare --plot DIR`: the first seed's time series of each policy, and the plots.</summary>
public static class ComparisonPlots
{
    public static Func<RunConfig, RunOutputs?> OutputsFor(string dir, ulong firstSeed) =>
        cfg => cfg.Seed == firstSeed ? new RunOutputs { TimeSeriesPath = CsvPath(dir, cfg.PolicyName) } : null;

    public static string CsvPath(string dir, string policy) => Path.Combine(dir, $"timeseries-{policy}.csv");

    public static IReadOnlyList<string> Write(Comparison c, string dir) =>
        Plots.WriteAll(c.Results.Select(r => SeriesTable.Parse(r.Policy, File.ReadAllText(CsvPath(dir, r.Policy)))).ToArray(), dir);
}
