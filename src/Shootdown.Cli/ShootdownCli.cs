using System.CommandLine;
using System.Globalization;
using Shootdown.Hardware;
using Shootdown.Policies;
using Shootdown.Reports;
using Spectre.Console;

namespace Shootdown.Cli;

/// <summary>The `shootdown` command: parsing, progress and printing. No simulation logic here.</summary>
public static class ShootdownCli
{
    private static readonly Option<string> MachineOpt = new("--machine") { Description = $"Machine preset ({string.Join(", ", MachineSpec.PresetNames)})", DefaultValueFactory = _ => "gorman-4node" };
    private static readonly Option<string> WorkloadOpt = new("--workload") { Description = $"Workload ({string.Join(", ", Workloads.WorkloadRegistry.Names)})", DefaultValueFactory = _ => "lru-file-mmap-read" };
    private static readonly Option<string> PolicyOpt = new("--policy") { Description = $"TLB flush policy ({string.Join(", ", PolicyRegistry.Names)})", DefaultValueFactory = _ => "vanilla" };
    private static readonly Option<string> ScaleOpt = new("--scale") { Description = "Divide memory and file sizes by N (1/N); CPUs are not scaled", DefaultValueFactory = _ => "1/16" };
    private static readonly Option<string> SeedOpt = new("--seed") { Description = "Seed of the run's random generator", DefaultValueFactory = _ => "1" };
    private static readonly Option<string?> NodesOpt = new("--nodes") { Description = "Override the preset's NUMA node count" };
    private static readonly Option<string?> CpusOpt = new("--cpus-per-node") { Description = "Override the preset's CPUs per node" };
    private static readonly Option<string?> MemoryOpt = new("--memory") { Description = "Override the preset's memory (e.g. 8GiB), before --scale" };
    private static readonly Option<string> FormatOpt = new("--format") { Description = "Output format: table or json", DefaultValueFactory = _ => "table" };
    private static readonly Option<bool> ProgressOpt = new("--progress") { Description = "Show a progress bar on stderr even with --format json" };
    private static readonly Option<string?> BatchOpt = new("--batch-size") { Description = "Pages per flush batch for PFN-list policies" };
    private static readonly Option<string?> ScmOpt = new("--swap-cluster-max") { Description = "SWAP_CLUSTER_MAX: pages per shrink_page_list batch (kernel: 32)" };
    private static readonly Option<string[]> CostOpt = new("--cost") { Description = "Override a cost-model constant, NAME=VALUE in ns (repeatable)", AllowMultipleArgumentsPerToken = false };
    private static readonly Option<string?> TraceOpt = new("--trace") { Description = "Write an ftrace text trace (trace-cmd report layout) to FILE" };
    private static readonly Option<string> TraceEventsOpt = new("--trace-events") { Description = "Trace events to keep, e.g. tlb:*,vmscan:*", DefaultValueFactory = _ => "*" };
    private static readonly Option<string?> TraceWindowOpt = new("--trace-window") { Description = "Simulated time window to trace, FROM-TO in seconds (e.g. 2-2.5)" };
    private static readonly Option<string?> PerfettoOpt = new("--perfetto") { Description = "Write a Chrome trace-event JSON timeline (opens in ui.perfetto.dev) to FILE" };
    private static readonly Option<string?> TimeSeriesOpt = new("--timeseries") { Description = "Write one CSV row per interval to FILE" };
    private static readonly Option<string> IntervalOpt = new("--interval") { Description = "Time-series interval (e.g. 100ms, 1s)", DefaultValueFactory = _ => "100ms" };
    private static readonly Option<string?> VmstatOpt = new("--vmstat") { Description = "Write the final counters in /proc/vmstat layout to FILE" };
    private static readonly Option<string?> InterruptsOpt = new("--interrupts") { Description = "Write the final interrupt counts in /proc/interrupts layout to FILE" };
    private static readonly Option<string?> OracleOpt = new("--oracle") { Description = "Coherence oracle: on or off (default: on for workloads that store)" };
    private static readonly Option<string?> StopOpt = new("--stop-on-violation")
    {
        Description = "Stop at the first violation (of the kind given: lost_write, stale_access_after_free, write_after_protect) and print the events leading to it",
        Arity = ArgumentArity.ZeroOrOne,
    };
    private static readonly Option<string> LastOpt = new("--last") { Description = "Events to print with --stop-on-violation", DefaultValueFactory = _ => "20" };
    private static readonly Option<string?> CeilingOpt = new("--flush-ceiling") { Description = "tlb_single_page_flush_ceiling (kernel: 33)" };
    private static readonly Option<string?> PteAccessibleOpt = new("--pte-accessible-check") { Description = "linux-6.4: skip the batched flush of PTEs no CPU can cache (4d4b6d66db63): on (default) or off" };

    public static async Task<int> RunAsync(string[] args)
    {
        var root = new RootCommand("Shootdown: simulate and measure TLB shootdowns in Linux memory management");
        root.Subcommands.Add(BuildRun());
        root.Subcommands.Add(BuildCompare());
        root.Subcommands.Add(BuildReproduce());
        root.Subcommands.Add(BuildPolicies());
        root.Subcommands.Add(BuildPlot());
        root.Subcommands.Add(BuildWorkloads());
        ParseResult parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            Console.Error.WriteLine($"shootdown: {parse.Errors[0].Message}");
            return 2;
        }
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"shootdown: {e.Message}");
            return 2;
        }
        catch (SimulationException e)
        {
            Console.Error.WriteLine($"shootdown: simulation stopped: {e.Message}");
            return 3;
        }
    }

    private static Command BuildRun()
    {
        var cmd = new Command("run", "Run one workload under one flush policy and report what it cost");
        foreach (Option o in new Option[] { MachineOpt, WorkloadOpt, PolicyOpt, ScaleOpt, SeedOpt, NodesOpt, CpusOpt, MemoryOpt, FormatOpt, ProgressOpt, BatchOpt, ScmOpt, CeilingOpt, PteAccessibleOpt, CostOpt, TraceOpt, TraceEventsOpt, TraceWindowOpt, PerfettoOpt, TimeSeriesOpt, IntervalOpt, VmstatOpt, InterruptsOpt, OracleOpt, StopOpt, LastOpt })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            RunConfig cfg = ConfigFrom(pr, pr.GetValue(PolicyOpt)!);
            cfg = cfg with { SeriesIntervalNs = ParseInterval(pr.GetValue(IntervalOpt)!) };
            string format = Format(pr);
            bool showProgress = format == "table" || pr.GetValue(ProgressOpt);
            RunOutputs outputs = OutputsFrom(pr);
            int last = ParseInt(pr.GetValue(LastOpt), "--last") is { } l and > 0 ? l : throw new ConfigException($"--last must be a positive integer, got '{pr.GetValue(LastOpt)}'");
            Safety.Oracle? oracle = null;
            RunResult r = RunWithProgress(cfg, showProgress, $"{cfg.PolicyName}", outputs with { OnSim = s => oracle = s.Oracle });
            if (oracle?.StoppedBy is { } v)
            {
                Console.Error.WriteLine($"{v.Kind} at {v.TimeS:0.000000} s on CPU {v.Cpu} ({v.Task}), mm {v.Mm}, address {v.Address}, frame {v.Frame}");
                Console.Error.WriteLine($"  {v.Detail}");
                Console.Error.WriteLine($"  window: {v.Window}");
                Console.Error.WriteLine($"  last {last} events of this frame:");
                foreach (string e in oracle.Log.Relevant(v.Frame, last))
                {
                    Console.Error.WriteLine("    " + e);
                }
                Console.Error.WriteLine($"  replay: {v.Replay}");
            }
            if (format == "json")
            {
                Console.Out.WriteLine(r.ToJson());
            }
            else
            {
                Tables.PrintRun(r);
            }
            return 0;
        });
        return cmd;
    }

    private static readonly Option<string> PoliciesOpt = new("--policies") { Description = "Comma-separated policies; the first is the baseline", DefaultValueFactory = _ => "vanilla,rfc-pfn32,rfc-pfn-page,linux-4.3" };
    private static readonly Option<string> RepeatOpt = new("--repeat") { Description = "Runs per policy, with seeds seed..seed+N-1 (means and standard deviations)", DefaultValueFactory = _ => "1" };
    private static readonly Option<string> CompareFormatOpt = new("--format") { Description = "Output format: table, json or csv", DefaultValueFactory = _ => "table" };
    private static readonly Option<string?> PlotOpt = new("--plot") { Description = "Also write each policy's time series and PNG/SVG plots into DIR" };
    private static readonly Option<string> InputOpt = new("--input") { Description = "Comma-separated time-series CSVs written by `run --timeseries`", Required = true };
    private static readonly Option<string?> LabelsOpt = new("--labels") { Description = "Comma-separated legend labels (default: file names)" };
    private static readonly Option<string> OutOpt = new("--out") { Description = "Directory for the PNG and SVG files", DefaultValueFactory = _ => "plots" };
    private static readonly Option<bool> FullOpt = new("--full") { Description = "Run the machine at full size (64 GiB, 640 GiB read) instead of the default scale" };

    private static Command BuildCompare()
    {
        var cmd = new Command("compare", "Run several policies on the same machine and workload; mmtests-style comparison");
        foreach (Option o in new Option[] { MachineOpt, WorkloadOpt, PoliciesOpt, ScaleOpt, SeedOpt, RepeatOpt, NodesOpt, CpusOpt, MemoryOpt, CompareFormatOpt, ProgressOpt, BatchOpt, ScmOpt, CeilingOpt, PteAccessibleOpt, CostOpt, PlotOpt })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            string format = CompareFormat(pr);
            var policies = Comparison.ParsePolicyList(pr.GetValue(PoliciesOpt)!);
            int repeat = ParseRepeat(pr.GetValue(RepeatOpt)!);
            RunConfig cfg = ConfigFrom(pr, policies[0]);
            string? plotDir = pr.GetValue(PlotOpt);
            if (plotDir is not null)
            {
                Directory.CreateDirectory(plotDir);
            }
            Comparison c = CompareWithProgress(cfg, policies, repeat, format == "table" || pr.GetValue(ProgressOpt),
                plotDir is null ? null : ComparisonPlots.OutputsFor(plotDir, cfg.Seed));
            if (plotDir is not null)
            {
                foreach (string f in ComparisonPlots.Write(c, plotDir))
                {
                    Console.Error.WriteLine($"wrote {f}");
                }
            }
            Console.Out.Write(format switch
            {
                "json" => c.ToJson() + "\n",
                "csv" => c.ToCsv(),
                _ => Header(cfg, repeat) + c.ToText(),
            });
            return 0;
        });
        return cmd;
    }

    private static Command BuildReproduce()
    {
        var cmd = new Command("reproduce", "Reproduce the seed's 4-node comparison and set it beside the published figures");
        foreach (Option o in new Option[] { ScaleOpt, SeedOpt, RepeatOpt, FullOpt, CompareFormatOpt, ProgressOpt, CostOpt })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            string format = CompareFormat(pr);
            int repeat = ParseRepeat(pr.GetValue(RepeatOpt)!);
            RunConfig cfg = ConfigFrom(pr, Reproduction.Policies[0]);
            if (pr.GetValue(FullOpt))
            {
                cfg = RunConfig.Create(scaleDivisor: 1, policy: cfg.PolicyName, seed: cfg.Seed) with { Costs = cfg.Costs };
            }
            Comparison c = CompareWithProgress(cfg, Reproduction.Policies, repeat, format == "table" || pr.GetValue(ProgressOpt));
            var rep = new Reproduction(c);
            Console.Out.Write(format switch
            {
                "json" => c.ToJson() + "\n",
                "csv" => c.ToCsv(),
                _ => Header(cfg, repeat) + c.ToText() + "\n" + rep.ToText(),
            });
            return 0;
        });
        return cmd;
    }

    private static Command BuildPolicies()
    {
        var cmd = new Command("policies", "List the TLB flush policies and what each models");
        cmd.SetAction(_ =>
        {
            foreach (var (name, summary) in PolicyRegistry.Describe())
            {
                Console.Out.WriteLine($"{name,-14} {summary}");
            }
            return 0;
        });
        return cmd;
    }

    private static Command BuildWorkloads()
    {
        var cmd = new Command("workloads", "List the workloads and what each does");
        cmd.SetAction(_ =>
        {
            foreach (var (name, summary) in Workloads.WorkloadRegistry.Describe())
            {
                Console.Out.WriteLine($"{name,-20} {summary}");
            }
            return 0;
        });
        return cmd;
    }

    private static Command BuildPlot()
    {
        var cmd = new Command("plot", "Plot one or more runs' time series (PNG and SVG): interrupts/s, reclaim rates, free memory");
        cmd.Options.Add(InputOpt);
        cmd.Options.Add(LabelsOpt);
        cmd.Options.Add(OutOpt);
        cmd.SetAction(pr =>
        {
            string[] inputs = pr.GetValue(InputOpt)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            string[]? labels = pr.GetValue(LabelsOpt)?.Split(',', StringSplitOptions.TrimEntries);
            if (inputs.Length == 0)
            {
                throw new ConfigException("--input needs at least one CSV file");
            }
            if (labels is not null && labels.Length != inputs.Length)
            {
                throw new ConfigException($"--labels has {labels.Length} labels for {inputs.Length} inputs");
            }
            var tables = new List<SeriesTable>();
            for (int i = 0; i < inputs.Length; i++)
            {
                if (!File.Exists(inputs[i]))
                {
                    throw new ConfigException($"--input file '{inputs[i]}' does not exist");
                }
                tables.Add(SeriesTable.Parse(labels?[i] ?? Path.GetFileNameWithoutExtension(inputs[i]), File.ReadAllText(inputs[i])));
            }
            foreach (string f in Plots.WriteAll(tables, pr.GetValue(OutOpt)!))
            {
                Console.Out.WriteLine($"wrote {f}");
            }
            return 0;
        });
        return cmd;
    }

    private static string Header(RunConfig cfg, int repeat) =>
        $"{cfg.Workload} on {cfg.Machine}: {cfg.Nodes}x{cfg.CpusPerNode} CPUs, {RunConfig.FormatBytes(cfg.MemoryBytes)} (scale 1/{cfg.ScaleDivisor}), seed {cfg.Seed}{(repeat > 1 ? $"..{cfg.Seed + (ulong)repeat - 1}" : "")}\n\n";

    private static string CompareFormat(ParseResult pr)
    {
        string f = pr.GetValue(CompareFormatOpt)!;
        if (f is not ("table" or "json" or "csv"))
        {
            throw new ConfigException($"unknown --format '{f}'; allowed: table, json, csv");
        }
        return f;
    }

    private static int ParseRepeat(string s)
    {
        if (int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0)
        {
            return n;
        }
        throw new ConfigException($"--repeat must be a positive integer, got '{s}'");
    }

    private static Comparison CompareWithProgress(RunConfig cfg, IReadOnlyList<string> policies, int repeat, bool show, Func<RunConfig, RunOutputs?>? outputsFor = null)
    {
        if (!show || Console.IsErrorRedirected)
        {
            return Comparison.Run(cfg, policies, repeat, outputsFor: outputsFor);
        }
        Comparison? result = null;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"{policies.Count * repeat} runs", maxValue: policies.Count * repeat);
                result = Comparison.Run(cfg, policies, repeat, progress: (done, _) => task.Value = done, outputsFor: outputsFor);
            });
        return result!;
    }

    internal static string Format(ParseResult pr, params string[] allowed)
    {
        string f = pr.GetValue(FormatOpt)!;
        string[] ok = allowed.Length > 0 ? allowed : ["table", "json"];
        if (!ok.Contains(f))
        {
            throw new ConfigException($"unknown --format '{f}'; allowed: {string.Join(", ", ok)}");
        }
        return f;
    }

    internal static RunConfig ConfigFrom(ParseResult pr, string policy)
    {
        int? nodes = ParseInt(pr.GetValue(NodesOpt), "--nodes");
        int? cpus = ParseInt(pr.GetValue(CpusOpt), "--cpus-per-node");
        string? mem = pr.GetValue(MemoryOpt);
        var pp = new PolicyParams();
        if (ParseInt(pr.GetValue(ScmOpt), "--swap-cluster-max") is { } scm)
        {
            pp = pp with { SwapClusterMax = scm };
        }
        if (ParseInt(pr.GetValue(CeilingOpt), "--flush-ceiling") is { } ceil)
        {
            pp = pp with { FlushCeiling = ceil };
        }
        if (ParseInt(pr.GetValue(BatchOpt), "--batch-size") is { } bs)
        {
            pp = pp with { BatchSize = bs };
        }
        switch (pr.GetValue(PteAccessibleOpt))
        {
            case null or "on":
                break;
            case "off":
                pp = pp with { PteAccessibleCheck = false };
                break;
            case { } bad:
                throw new ConfigException($"--pte-accessible-check must be on or off, got '{bad}'");
        }
        string? oracleOpt = pr.GetValue(OracleOpt);
        bool? oracle = oracleOpt switch
        {
            null => null,
            "on" => true,
            "off" => false,
            _ => throw new ConfigException($"--oracle must be on or off, got '{oracleOpt}'"),
        };
        RunConfig cfg = RunConfig.Create(
            oracle: oracle,
            stopOnViolation: pr.GetResult(StopOpt) is not null,
            stopOnKind: pr.GetValue(StopOpt),
            machine: pr.GetValue(MachineOpt) ?? "gorman-4node",
            nodes: nodes,
            cpusPerNode: cpus,
            memoryBytes: mem is null ? null : RunConfig.ParseBytes(mem),
            scaleDivisor: RunConfig.ParseScale(pr.GetValue(ScaleOpt) ?? "1/16"),
            workload: pr.GetValue(WorkloadOpt) ?? "lru-file-mmap-read",
            policy: policy,
            seed: ParseSeed(pr.GetValue(SeedOpt) ?? "1"),
            policyParams: pp);
        CostModel costs = cfg.Costs;
        foreach (string kv in pr.GetValue(CostOpt) ?? [])
        {
            int eq = kv.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !long.TryParse(kv[(eq + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out long val))
            {
                throw new ConfigException($"malformed --cost '{kv}'; expected NAME=VALUE with VALUE a non-negative integer");
            }
            costs = costs.With(kv[..eq], val);
        }
        return cfg with { Costs = costs };
    }

    private static int? ParseInt(string? s, string name)
    {
        if (s is null)
        {
            return null;
        }
        if (int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v))
        {
            return v;
        }
        throw new ConfigException($"{name} must be an integer, got '{s}'");
    }

    internal static ulong ParseSeed(string s)
    {
        if (ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v))
        {
            return v;
        }
        throw new ConfigException($"--seed must be a non-negative integer, got '{s}'");
    }

    private static RunOutputs OutputsFrom(ParseResult pr)
    {
        var filter = new Observe.TraceFilter { Patterns = Observe.TraceFilter.ParsePatterns(pr.GetValue(TraceEventsOpt)!) };
        if (pr.GetValue(TraceWindowOpt) is { } w)
        {
            var (from, to) = Observe.TraceFilter.ParseWindow(w);
            filter = filter with { FromNs = from, ToNs = to };
        }
        var o = new RunOutputs
        {
            FtracePath = pr.GetValue(TraceOpt),
            PerfettoPath = pr.GetValue(PerfettoOpt),
            Filter = filter,
            TimeSeriesPath = pr.GetValue(TimeSeriesOpt),
            VmstatPath = pr.GetValue(VmstatOpt),
            InterruptsPath = pr.GetValue(InterruptsOpt),
        };
        foreach (string? path in new[] { o.FtracePath, o.PerfettoPath, o.TimeSeriesPath, o.VmstatPath, o.InterruptsPath })
        {
            if (path is not null)
            {
                string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
                if (!Directory.Exists(dir))
                {
                    throw new ConfigException($"cannot write '{path}': directory '{dir}' does not exist");
                }
            }
        }
        return o;
    }

    internal static long ParseInterval(string s)
    {
        string t = s.Trim();
        double mult = 1e6; // milliseconds by default
        if (t.EndsWith("ms", StringComparison.Ordinal))
        {
            t = t[..^2];
        }
        else if (t.EndsWith('s'))
        {
            t = t[..^1];
            mult = 1e9;
        }
        if (double.TryParse(t, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double v) && v > 0)
        {
            long ns = (long)(v * mult);
            if (ns >= 1_000_000 && 1_000_000_000 % ns == 0 || ns % 1_000_000_000 == 0)
            {
                return ns;
            }
        }
        throw new ConfigException($"malformed --interval '{s}'; expected a duration that divides or is a multiple of a second, at least 1ms (e.g. 100ms, 1s)");
    }

    internal static RunResult RunWithProgress(RunConfig cfg, bool show, string label, RunOutputs? outputs = null)
    {
        if (!show || Console.IsErrorRedirected)
        {
            return Runner.Run(cfg, outputs: outputs);
        }
        RunResult? result = null;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(label, maxValue: 1.0);
                result = Runner.Run(cfg, p => task.Value = p, outputs);
                task.Value = 1.0;
            });
        return result!;
    }
}
