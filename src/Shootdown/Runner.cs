using System.Diagnostics;
using Shootdown.Observe;
using Shootdown.Reports;

namespace Shootdown;

/// <summary>Files a run writes besides its result. Null = not written.</summary>
public sealed record RunOutputs
{
    public string? FtracePath { get; init; }
    public string? PerfettoPath { get; init; }
    public Observe.TraceFilter Filter { get; init; } = new();
    public string? TimeSeriesPath { get; init; }
    public string? VmstatPath { get; init; }
    public string? InterruptsPath { get; init; }

    /// <summary>Called with the simulation before it runs (the CLI keeps its oracle for printing).</summary>
    public Action<Sim>? OnSim { get; init; }

    public bool Tracing => FtracePath is not null || PerfettoPath is not null;
}

/// <summary>Runs one configuration and measures it.</summary>
public static class Runner
{
    public static RunResult Run(RunConfig config, Action<double>? progress = null, RunOutputs? outputs = null, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var sim = new Sim(config);
        Tracer? tracer = outputs is { Tracing: true }
            ? new Tracer(outputs.Filter, outputs.FtracePath, outputs.PerfettoPath, config.NrCpus)
            : null;
        sim.Trace = tracer;
        outputs?.OnSim?.Invoke(sim);
        try
        {
            sim.Run(progress, cancel);
        }
        finally
        {
            tracer?.Dispose();
        }
        if (outputs is not null)
        {
            WriteFiles(sim, outputs);
        }
        sw.Stop();
        return RunResult.From(sim, sw.Elapsed.TotalSeconds);
    }

    private static void WriteFiles(Sim sim, RunOutputs o)
    {
        if (o.TimeSeriesPath is not null)
        {
            File.WriteAllText(o.TimeSeriesPath, ProcFiles.TimeSeriesCsv(sim.Series, sim.Memory.Zones, sim.LastExit));
        }
        if (o.VmstatPath is not null)
        {
            File.WriteAllText(o.VmstatPath, ProcFiles.Vmstat(sim.VmStat));
        }
        if (o.InterruptsPath is not null)
        {
            File.WriteAllText(o.InterruptsPath, ProcFiles.Interrupts(sim.Cpus));
        }
    }
}
