using System.Diagnostics;
using Shootdown.Reports;

namespace Shootdown;

/// <summary>Runs one configuration and measures it.</summary>
public static class Runner
{
    public static RunResult Run(RunConfig config, Action<double>? progress = null, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        var sim = new Sim(config);
        sim.Run(progress, cancel);
        sw.Stop();
        return RunResult.From(sim, sw.Elapsed.TotalSeconds);
    }
}
