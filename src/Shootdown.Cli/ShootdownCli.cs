using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using System.Globalization;
using Shootdown.Hardware;
using Shootdown.Policies;
using Shootdown.Reports;
using Spectre.Console;

namespace Shootdown.Cli;

/// <summary>The `shootdown` command: parsing, progress and printing. No simulation logic here.</summary>
public static class ShootdownCli
{
    private static readonly Option<string> MachineOpt = new("--machine") { Description = $"Machine preset ({string.Join(", ", MachineSpec.PresetNames)}; see `shootdown machines`) or a machine file FILE.toml", DefaultValueFactory = _ => "gorman-4node" };
    private static readonly Option<string> WorkloadOpt = new("--workload") { Description = $"Workload ({string.Join(", ", Workloads.WorkloadRegistry.Names)})", DefaultValueFactory = _ => "lru-file-mmap-read" };
    private static readonly Option<string> PolicyOpt = new("--policy") { Description = $"TLB flush policy ({string.Join(", ", PolicyRegistry.Names)})", DefaultValueFactory = _ => "vanilla" };
    private static readonly Option<string> ScaleOpt = new("--scale") { Description = "Divide memory and file sizes by N (1/N); CPUs are not scaled", DefaultValueFactory = _ => "1/16" };
    private static readonly Option<string> SeedOpt = new("--seed") { Description = "Seed of the run's random generator", DefaultValueFactory = _ => "1" };
    private static readonly Option<string?> NodesOpt = new("--nodes") { Description = "Override the preset's NUMA node count" };
    private static readonly Option<string?> CpusOpt = new("--cpus-per-node") { Description = "Override the preset's CPUs per node" };
    private static readonly Option<string?> MemoryOpt = new("--memory") { Description = "Override the preset's memory (e.g. 8GiB), before --scale" };
    private static readonly Option<string> FormatOpt = new("--format") { Description = "Output format: table or json", DefaultValueFactory = _ => "table" };
    internal static readonly Option<bool> ProgressOpt = new("--progress") { Description = "Show a progress bar on stderr even with --format json" };
    private static readonly Option<string?> BatchOpt = new("--batch-size") { Description = "PFN list length of the policies that keep one (rfc-pfn32, rfc-pfn-page, v6-pfn32) [default: 32 for rfc-pfn32 and v6-pfn32; a page's worth, (4096 - cpumask - 8) / 8, for rfc-pfn-page]" };
    private static readonly Option<string?> ScmOpt = new("--swap-cluster-max") { Description = "SWAP_CLUSTER_MAX: pages per shrink_page_list batch (kernel: 32)" };
    internal static readonly Option<string?> CpuSpeedOpt = new("--cpu-speed") { Description = "Run each CPU's own work F times as fast (F < 1: slower): divides the kernel-path constants and the core's own hardware ones (page walk, INVLPG, CR3 write, clear/copy page, the user loop) by F, before any --cost; IPIs, cache-line transfers, DRAM and I/O keep their cost. An experiment (what if the cores were F times as fast?); a thread alone on its core already runs faster by the machine's smt_throughput_pct" };
    internal static readonly Option<string[]> CostOpt = new("--cost") { Description = "Override a cost-model constant, NAME=VALUE (ns for times; MHz, percent, entries or bytes where the name says so) (repeatable; NAME as in the README's cost table or its snake_case key, e.g. clear_page_ns). Kernel-path constants are stated for a 3.4 GHz Ivy Bridge-class core: a run multiplies them by 3400 / core_clock_mhz x 100 / core_ipc_pct (1870 MHz and 84% on gorman-4node)", AllowMultipleArgumentsPerToken = false };
    private static readonly Option<string?> TraceOpt = new("--trace") { Description = "Write an ftrace text trace (trace-cmd report layout) to FILE" };
    private static readonly Option<string> TraceEventsOpt = new("--trace-events") { Description = "Trace events to keep, e.g. tlb:*,vmscan:*", DefaultValueFactory = _ => "*" };
    private static readonly Option<string?> TraceWindowOpt = new("--trace-window") { Description = "Simulated time window to trace, FROM-TO in seconds (e.g. 2-2.5)" };
    private static readonly Option<string?> PerfettoOpt = new("--perfetto") { Description = "Write a Chrome trace-event JSON timeline (opens in ui.perfetto.dev) to FILE" };
    private static readonly Option<string?> TimeSeriesOpt = new("--timeseries") { Description = "Write one CSV row per interval to FILE" };
    private static readonly Option<string> IntervalOpt = new("--interval") { Description = "Interval of --timeseries rows and of the --perfetto interrupts/s counter (e.g. 100ms, 1s)", DefaultValueFactory = _ => "100ms" };
    private static readonly Option<string?> VmstatOpt = new("--vmstat") { Description = "Write the final counters in /proc/vmstat layout to FILE" };
    private static readonly Option<string?> InterruptsOpt = new("--interrupts") { Description = "Write the final interrupt counts in /proc/interrupts layout to FILE" };
    private static readonly Option<string?> OracleOpt = new("--oracle") { Description = "Coherence oracle: on or off (default: on for workloads that store)" };
    private static readonly Option<string?> StopOpt = new("--stop-on-violation")
    {
        Description = "Stop at the first violation (of the kind given: lost_write, stale_access_after_free, write_after_protect) and print the events leading to it",
        Arity = ArgumentArity.ZeroOrOne,
    };
    private static readonly Option<string> LastOpt = new("--last") { Description = "Events of the frame's history to print with --stop-on-violation", DefaultValueFactory = _ => "20" };
    private static readonly Option<string?> ConfigOpt = new("--config") { HelpName = "FILE", Description = "Replay a configuration: a run's JSON (its \"config\"), or the config as JSON or TOML (see `shootdown config`)" };
    private static readonly Option<string?> CeilingOpt = new("--flush-ceiling") { Description = "tlb_single_page_flush_ceiling (kernel: 33)" };
    private static readonly Option<string?> StorePercentOpt = new("--store-percent") { Description = "migrate-bounce, numa-migrate: share of accesses that are stores, 0..100 [default: 50]" };
    private static readonly Option<string?> PteAccessibleOpt = new("--pte-accessible-check") { Description = "linux-6.4: skip the batched flush of PTEs no CPU can cache (4d4b6d66db63): on (default) or off" };
    private static readonly Option<string?> MinFreeOpt = new("--min-free-kbytes") { Description = "vm.min_free_kbytes of the full-size machine, in KiB, which sets the watermarks (kernel: sqrt(16 x memory in KiB), at most 65536; with THP enabled khugepaged raises it: 135168 on gorman-4node, 67584 on gorman-1node)" };
    internal static readonly Option<string?> MemcgOpt = new("--memcg") { Description = "memory cgroups in the kernel: on (default; the LRU lists are the root memcg's) or off (CONFIG_MEMCG=n or cgroup_disable=memory: the lists are struct zone's, in lru_lock's cache line)" };

    /// <summary>Exit statuses (README, "Exit status").</summary>
    public const int ExitOk = 0, ExitInternalError = 1, ExitBadInput = 2, ExitSimulationFailed = 3, ExitStoppedByViolation = 4, ExitOutOfTolerance = 5;

    public static async Task<int> RunAsync(string[] args)
    {
        var root = new Command("shootdown", "Shootdown: simulate and measure TLB shootdowns in Linux memory management")
        {
            Options = { new HelpOption(), new VersionOption() },
        };
        root.Subcommands.Add(BuildRun());
        root.Subcommands.Add(BuildCompare());
        root.Subcommands.Add(BuildReproduce());
        root.Subcommands.Add(BuildPolicies());
        root.Subcommands.Add(BuildPlot());
        root.Subcommands.Add(BuildWorkloads());
        root.Subcommands.Add(BuildConfig());
        root.Subcommands.Add(BuildMachines());
        root.Subcommands.Add(SweepCli.Build());
        root.Subcommands.Add(SensitivityCli.Build());
        root.Subcommands.Add(CalibrateCli.Build());
        root.Subcommands.Add(CrossCheckCli.Build());
        try
        {
            // No response files: "@PATH" is an argument like any other (System.CommandLine would read
            // PATH and crash on a directory; a run's configuration file is --config FILE).
            ParseResult parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
            if (parse.Errors.Count > 0)
            {
                return Fail(args, ExitBadInput, ParseError(root, parse));
            }
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
        }
        catch (ConfigException e)
        {
            return Fail(args, ExitBadInput, e.Message);
        }
        catch (SimulationException e)
        {
            return Fail(args, ExitSimulationFailed, $"simulation stopped: {e.Message}");
        }
        catch (IOException e)
        {
            return Fail(args, ExitSimulationFailed, $"cannot write output: {e.Message}");
        }
#pragma warning disable CA1031 // the last resort: one line, never a stack trace
        catch (Exception e)
#pragma warning restore CA1031
        {
            return Fail(args, ExitInternalError, $"internal error (a bug; please report it with the command line): {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Prints one line on stderr (long arguments shortened, no line breaks) and returns the status.</summary>
    private static int Fail(string[] args, int status, string message)
    {
        string m = message.ReplaceLineEndings(" ");
        foreach (string a in args.Where(a => a.Length > 60).Distinct().OrderByDescending(a => a.Length))
        {
            m = m.Replace(a, ParseArg.Clip(a), StringComparison.Ordinal);
        }
        if (m.Length > 2000)
        {
            m = ParseArg.Clip(m);
        }
        Console.Error.WriteLine($"shootdown: {m}");
        return status;
    }

    private static string ParseError(Command root, ParseResult parse)
    {
        string commands = string.Join(", ", root.Subcommands.Select(c => c.Name));
        if (parse.CommandResult.Command == root)
        {
            return parse.Tokens.Count == 0
                ? $"no command given; commands: {commands} (shootdown --help describes them)"
                : $"unknown command '{parse.Tokens[0].Value}'; commands: {commands}";
        }
        ParseError e = parse.Errors.FirstOrDefault(x => x.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parse.Errors[0];
        return e.Message;
    }

    private static Command BuildRun()
    {
        var cmd = new Command("run", "Run one workload under one flush policy and report what it cost");
        foreach (Option o in new Option[] { ConfigOpt, MachineOpt, WorkloadOpt, PolicyOpt, ScaleOpt, SeedOpt, NodesOpt, CpusOpt, MemoryOpt, FormatOpt, ProgressOpt, BatchOpt, ScmOpt, CeilingOpt, PteAccessibleOpt, MemcgOpt, MinFreeOpt, StorePercentOpt, CostOpt, CpuSpeedOpt, TraceOpt, TraceEventsOpt, TraceWindowOpt, PerfettoOpt, TimeSeriesOpt, IntervalOpt, VmstatOpt, InterruptsOpt, OracleOpt, StopOpt, LastOpt })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            RunConfig cfg = ResolveConfig(pr);
            string format = Format(pr);
            bool showProgress = format == "table" || pr.GetValue(ProgressOpt);
            RunOutputs outputs = OutputsFrom(pr);
            if (Given(pr, IntervalOpt) || pr.GetValue(ConfigOpt) is null)
            {
                cfg = cfg with { SeriesIntervalNs = ParseInterval(pr.GetValue(IntervalOpt)!) };
            }
            int last = (int)ParseArg.Integer(pr.GetValue(LastOpt)!, "--last", 1, 100_000);
            if (Given(pr, LastOpt) && !cfg.StopOnViolation)
            {
                throw new ConfigException("--last sets how much history --stop-on-violation prints; add --stop-on-violation or drop --last");
            }
            Safety.Oracle? oracle = null;
            RunResult r = RunWithProgress(cfg, showProgress, $"{cfg.PolicyName}", outputs with { OnSim = s => oracle = s.Oracle });
            if (outputs.Tracing && outputs.Filter.FromNs >= r.ElapsedS * 1e9)
            {
                Console.Error.WriteLine($"shootdown: warning: --trace-window starts at {outputs.Filter.FromNs / 1e9:0.###} s, after the run ended at {r.ElapsedS:0.###} s; the trace holds no event");
            }
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
                Tables.PrintRun(r, pr.GetValue(ConfigOpt) is null ? CostNote(pr.GetValue(MachineOpt) ?? "gorman-4node", cfg) : ClockNote(cfg.Costs));
            }
            return r.Safety is { Stopped: true } ? ExitStoppedByViolation : ExitOk;
        });
        return cmd;
    }

    /// <summary>
    /// The run's configuration: from --config FILE (which only --stop-on-violation and --oracle may
    /// amend), or from the machine, workload, policy and cost options.
    /// </summary>
    private static RunConfig ResolveConfig(ParseResult pr)
    {
        if (pr.GetValue(ConfigOpt) is not { } file)
        {
            return ConfigFrom(pr, [pr.GetValue(PolicyOpt)!]);
        }
        foreach (Option o in new Option[] { MachineOpt, WorkloadOpt, PolicyOpt, ScaleOpt, SeedOpt, NodesOpt, CpusOpt, MemoryOpt, BatchOpt, ScmOpt, CeilingOpt, PteAccessibleOpt, MemcgOpt, MinFreeOpt, StorePercentOpt, CostOpt, CpuSpeedOpt })
        {
            if (Given(pr, o))
            {
                throw new ConfigException($"--config replays '{file}' as written; drop {o.Name} (or change the file)");
            }
        }
        RunConfig cfg = ConfigFile.Load(file);
        if (OnOff(pr, OracleOpt) is bool oracle)
        {
            cfg = cfg with { OracleOn = oracle };
        }
        if (pr.GetResult(StopOpt) is not null)
        {
            cfg = cfg with { StopOnViolation = true, StopOnKind = pr.GetValue(StopOpt), OracleOn = pr.GetValue(OracleOpt) != "off" };
        }
        cfg.Validate();
        return cfg;
    }

    private static Command BuildConfig()
    {
        var cmd = new Command("config", "Print the resolved configuration of `run` (the same options, or --config FILE) as TOML or JSON, without running");
        var fmt = new Option<string>("--format") { Description = "toml or json", DefaultValueFactory = _ => "toml" };
        foreach (Option o in new Option[] { ConfigOpt, MachineOpt, WorkloadOpt, PolicyOpt, ScaleOpt, SeedOpt, NodesOpt, CpusOpt, MemoryOpt, BatchOpt, ScmOpt, CeilingOpt, PteAccessibleOpt, MemcgOpt, MinFreeOpt, StorePercentOpt, CostOpt, CpuSpeedOpt, OracleOpt, StopOpt, fmt })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            string f = pr.GetValue(fmt)!;
            if (f is not ("toml" or "json"))
            {
                throw new ConfigException($"unknown --format '{f}'; allowed: toml, json");
            }
            RunConfig cfg = ResolveConfig(pr);
            Console.Out.Write(f == "toml" ? ConfigFile.ToToml(cfg) : ConfigFile.ToJson(cfg) + "\n");
            return ExitOk;
        });
        return cmd;
    }

    /// <summary>Whether the user gave the option (not its default).</summary>
    private static bool Given(ParseResult pr, Option o) => pr.GetResult(o) is { Implicit: false };

    private static readonly Option<string> PoliciesOpt = new("--policies") { Description = "Comma-separated policies; the first is the baseline", DefaultValueFactory = _ => "vanilla,rfc-pfn32,rfc-pfn-page,linux-4.3" };
    private static readonly Option<string> RepeatOpt = new("--repeat") { Description = "Runs per policy, with seeds seed..seed+N-1 (means and standard deviations)", DefaultValueFactory = _ => "1" };
    private static readonly Option<string> CompareFormatOpt = new("--format") { Description = "Output format: table, json or csv", DefaultValueFactory = _ => "table" };
    private static readonly Option<string?> PlotOpt = new("--plot") { Description = "Also write each policy's time series and PNG/SVG plots into DIR" };
    private static readonly Option<string> InputOpt = new("--input") { Description = "Comma-separated time-series CSVs written by `run --timeseries`", Required = true };
    private static readonly Option<string?> LabelsOpt = new("--labels") { Description = "Comma-separated legend labels (default: file names)" };
    private static readonly Option<string> OutOpt = new("--out") { Description = "Directory for the PNG and SVG files", DefaultValueFactory = _ => "plots" };
    private static readonly Option<bool> FullOpt = new("--full") { Description = "Run each machine at full size (gorman-4node: 64 GiB, 640 GiB read per policy) instead of its default scale" };

    private static Command BuildCompare()
    {
        var cmd = new Command("compare", "Run several policies on the same machine and workload; mmtests-style comparison");
        foreach (Option o in new Option[] { MachineOpt, WorkloadOpt, PoliciesOpt, ScaleOpt, SeedOpt, RepeatOpt, NodesOpt, CpusOpt, MemoryOpt, CompareFormatOpt, ProgressOpt, BatchOpt, ScmOpt, CeilingOpt, PteAccessibleOpt, MemcgOpt, MinFreeOpt, StorePercentOpt, CostOpt, CpuSpeedOpt, OracleOpt, PlotOpt })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            string format = CompareFormat(pr);
            var policies = Comparison.ParsePolicyList(pr.GetValue(PoliciesOpt)!);
            RunConfig cfg = ConfigFrom(pr, policies);
            int repeat = ParseRepeat(pr, cfg.Seed);
            string? plotDir = pr.GetValue(PlotOpt);
            if (plotDir is not null)
            {
                EnsureWritableDirectory("--plot", plotDir);
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
                _ => Header(cfg, repeat, CostNote(pr.GetValue(MachineOpt) ?? "gorman-4node", cfg)) + c.ToText(),
            });
            return 0;
        });
        return cmd;
    }

    private static readonly Option<string?> ReproMachineOpt = new("--machine") { Description = $"Reproduce one machine only ({string.Join(", ", ReproductionSpec.All.Select(s => s.Machine))}) [default: each in turn]" };
    private static readonly Option<string?> ReproScaleOpt = new("--scale") { Description = $"Divide memory and file sizes by N (1/N) [default: {string.Join(", ", ReproductionSpec.All.Select(s => $"1/{s.DefaultScale} for {s.Machine}"))}]" };

    private static Command BuildReproduce()
    {
        var cmd = new Command("reproduce", "Reproduce the seed's comparison on its 4-node and 1-node machines and set it beside the published figures");
        foreach (Option o in new Option[] { ReproMachineOpt, ReproScaleOpt, SeedOpt, RepeatOpt, FullOpt, CompareFormatOpt, ProgressOpt, CostOpt, CpuSpeedOpt, MemcgOpt })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            string format = CompareFormat(pr);
            IReadOnlyList<ReproductionSpec> specs = pr.GetValue(ReproMachineOpt) is { } m
                ? [ReproductionSpec.For(m) ?? throw new ConfigException($"reproduce has no reproduction of machine '{ParseArg.Clip(m)}'; allowed: {string.Join(", ", ReproductionSpec.All.Select(s => s.Machine))} (default: each in turn)")]
                : ReproductionSpec.All;
            int? scale = pr.GetValue(ReproScaleOpt) is { } sc ? RunConfig.ParseScale(sc) : null;
            if (pr.GetValue(FullOpt))
            {
                if (scale is { } s && s != 1)
                {
                    throw new ConfigException($"--full runs the machine at full size, --scale 1/{s} asks for less; give one of them");
                }
                scale = 1;
            }
            var cfgs = specs.Select(spec => ConfigFrom(pr, spec.Policies, spec.Machine, scale ?? spec.DefaultScale)).ToArray();
            int repeat = ParseRepeat(pr, cfgs[0].Seed);
            var sets = cfgs.Zip(specs, (c, s) => (c, s.Policies)).ToArray();
            IReadOnlyList<Comparison> cs = WithProgress(format == "table" || pr.GetValue(ProgressOpt), $"{sets.Sum(x => x.Policies.Count) * repeat} runs", sets.Sum(x => x.Policies.Count) * repeat,
                progress => Comparison.RunMany(sets, repeat, progress: progress));
            var reps = specs.Select((s, i) => new Reproduction(s, cs[i])).ToArray();
            switch (format)
            {
                case "json":
                    var root = new System.Text.Json.Nodes.JsonObject
                    {
                        ["all_within"] = reps.All(r => r.AllWithin),
                        ["reproductions"] = new System.Text.Json.Nodes.JsonArray(reps.Select(r => (System.Text.Json.Nodes.JsonNode?)r.ToJsonNode()).ToArray()),
                    };
                    Console.Out.Write(root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
                    break;
                case "csv":
                    Console.Out.Write(string.Concat(reps.Select((r, i) => r.ToCsv(header: i == 0))));
                    break;
                default:
                    Console.Out.Write(string.Join("\n", reps.Select((r, i) => Header(cfgs[i], repeat, CostNote(specs[i].Machine, cfgs[i])) + r.Comparison.ToText() + "\n" + r.ToText())));
                    break;
            }
            return reps.All(r => r.AllWithin) ? ExitOk : ExitOutOfTolerance;
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

    private static Command BuildMachines()
    {
        var cmd = new Command("machines", "List the machine presets (embedded TOML files; --machine FILE.toml takes your own), or print one");
        var show = new Argument<string?>("name") { Description = "Print this preset's file (a template for your own machine)", Arity = ArgumentArity.ZeroOrOne };
        cmd.Arguments.Add(show);
        cmd.SetAction(pr =>
        {
            if (pr.GetValue(show) is { } name)
            {
                Console.Out.Write(MachineSpec.PresetText(name));
                return ExitOk;
            }
            foreach (string n in MachineSpec.PresetNames)
            {
                MachineSpec m = MachineSpec.Preset(n);
                Console.Out.WriteLine($"{n,-14} {m.Nodes} x {m.CpusPerNode} CPUs, {RunConfig.FormatBytes(m.MemoryBytes),-8} {m.Description}");
            }
            return ExitOk;
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
            string outDir = pr.GetValue(OutOpt)!;
            EnsureWritableDirectory("--out", outDir);
            foreach (string f in Plots.WriteAll(tables, outDir))
            {
                Console.Out.WriteLine($"wrote {f}");
            }
            return 0;
        });
        return cmd;
    }

    private static string Header(RunConfig cfg, int repeat, string costNote = "") =>
        $"{cfg.Workload} on {cfg.Machine}: {cfg.Nodes}x{cfg.CpusPerNode} CPUs, {RunConfig.FormatBytes(cfg.MemoryBytes)} (scale 1/{cfg.ScaleDivisor}), seed {cfg.Seed}{(repeat > 1 ? $"..{cfg.Seed + (ulong)repeat - 1}" : "")}\n{(costNote.Length > 0 ? costNote + "\n" : "")}\n";

    /// <summary>What the human tables say of a run whose kernel has no memory cgroups.</summary>
    internal const string NoMemcgNote = "kernel without memory cgroups (--memcg off): the LRU lists are struct zone's, in lru_lock's cache line";

    /// <summary>
    /// The cost constants a run sets differently from its machine's own (by --cost or --cpu-speed),
    /// and a kernel without memory cgroups (--memcg off), for the human tables, which would
    /// otherwise look like a default run's; "" when there are none.
    /// </summary>
    internal static string CostNote(string machine, RunConfig cfg)
    {
        string clock = ClockNote(cfg.Costs);
        string set = SetNote(machine, cfg);
        string note = clock.Length == 0 ? set : set.Length == 0 ? clock : clock + "\n" + set;
        // The published runs' kernels had memory cgroups: a table without them must say so.
        string memcg = cfg.Policy.Memcg ? "" : NoMemcgNote;
        return note.Length == 0 ? memcg : memcg.Length == 0 ? note : note + "\n" + memcg;
    }

    /// <summary>The constants --cost or --cpu-speed set differently from the machine's own; "" when there are none.</summary>
    internal static string SetNote(string machine, RunConfig cfg)
    {
        var diffs = CostModel.Differences(MachineSpec.Resolve(machine).Costs, cfg.Costs);
        return diffs.Count == 0 ? ""
            : $"cost constants set for this run (the machine's -> this run's): {string.Join(", ", diffs.Select(d => $"{d.Name} {d.From} -> {d.To}"))}";
    }

    /// <summary>
    /// For cores at another clock, or with another work per clock, than the core the kernel-path
    /// constants are stated for: the factor the run applies to them (the tables and --cost show the
    /// stated values); "" for the reference core.
    /// </summary>
    internal static string ClockNote(CostModel costs) =>
        costs.CoreClockMhz == CostModel.ReferenceCoreClockMhz && costs.CoreIpcPct == CostModel.ReferenceCoreIpcPct ? ""
            : string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"cores at {costs.CoreClockMhz} MHz{(costs.CoreIpcPct == CostModel.ReferenceCoreIpcPct ? "" : $" doing {costs.CoreIpcPct}% of the reference core's work per clock")}: kernel-path constants x{costs.KernelPathFactor():0.00} (stated for a {CostModel.ReferenceCoreClockMhz} MHz Ivy Bridge-class core)");

    private static string CompareFormat(ParseResult pr)
    {
        string f = pr.GetValue(CompareFormatOpt)!;
        if (f is not ("table" or "json" or "csv"))
        {
            throw new ConfigException($"unknown --format '{f}'; allowed: table, json, csv");
        }
        return f;
    }

    private static int ParseRepeat(ParseResult pr, ulong seed)
    {
        int n = (int)ParseArg.Integer(pr.GetValue(RepeatOpt)!, "--repeat", 1, 10_000);
        if ((ulong)(n - 1) > ulong.MaxValue - seed)
        {
            throw new ConfigException($"--seed {seed} with --repeat {n} would run seeds past {ulong.MaxValue} (seeds must not wrap); lower --seed or --repeat");
        }
        return n;
    }

    private static Comparison CompareWithProgress(RunConfig cfg, IReadOnlyList<string> policies, int repeat, bool show, Func<RunConfig, RunOutputs?>? outputsFor = null) =>
        WithProgress(show, $"{policies.Count * repeat} runs", policies.Count * repeat,
            progress => Comparison.Run(cfg, policies, repeat, progress: progress, outputsFor: outputsFor));

    /// <summary>
    /// Does <paramref name="work"/> under a progress bar on stderr (when <paramref name="show"/> and
    /// stderr is a terminal); the work reports (done, total) through the callback it is given.
    /// </summary>
    internal static T WithProgress<T>(bool show, string label, int total, Func<Action<int, int>?, T> work) =>
        UnderProgressBar(show, label, total,
            [new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn()],
            task => work(task is null ? null : (done, _) => task.Value = done));

    /// <summary>
    /// Runs <paramref name="work"/> with a progress task of <paramref name="total"/> steps shown on
    /// stderr in <paramref name="columns"/> — or with none (null) when <paramref name="show"/> is
    /// false or stderr is not a terminal.
    /// </summary>
    internal static T UnderProgressBar<T>(bool show, string label, double total, ProgressColumn[] columns, Func<ProgressTask?, T> work)
    {
        if (!show || Console.IsErrorRedirected)
        {
            return work(null);
        }
        T? result = default;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .AutoClear(true)
            .Columns(columns)
            .Start(ctx => result = work(ctx.AddTask(label, maxValue: total)));
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

    /// <summary>The run configuration from the machine, workload, policy and cost options; <paramref name="policies"/>[0] is the run's policy.</summary>
    internal static RunConfig ConfigFrom(ParseResult pr, IReadOnlyList<string> policies, string? machine = null, int? scaleDivisor = null)
    {
        int? nodes = ParseInt(pr, NodesOpt, 1, 4096);
        int? cpus = ParseInt(pr, CpusOpt, 1, 4096);
        string? mem = pr.GetValue(MemoryOpt);
        var pp = new PolicyParams();
        if (ParseInt(pr, ScmOpt, 1, 4096) is { } scm)
        {
            pp = pp with { SwapClusterMax = scm };
        }
        if (ParseInt(pr, CeilingOpt, 0, int.MaxValue) is { } ceil)
        {
            pp = pp with { FlushCeiling = ceil };
        }
        if (ParseInt(pr, BatchOpt, 1, 65536) is { } bs)
        {
            if (!policies.Any(PolicyRegistry.WithPfnList.Contains))
            {
                throw new ConfigException(
                    $"--batch-size sets the PFN list of {string.Join(", ", PolicyRegistry.WithPfnList.SkipLast(1))} and {PolicyRegistry.WithPfnList[^1]}; {(policies.Count == 1 ? $"policy '{policies[0]}' keeps" : "none of these policies keeps")} no such list");
            }
            pp = pp with { BatchSize = bs };
        }
        if (OnOff(pr, PteAccessibleOpt) is bool pteAccessibleCheck)
        {
            pp = pp with { PteAccessibleCheck = pteAccessibleCheck };
        }
        if (ParseInt(pr, MinFreeOpt, 128, int.MaxValue) is { } minFree)
        {
            pp = pp with { MinFreeKbytes = minFree };
        }
        if (OnOff(pr, MemcgOpt) is bool memcg)
        {
            pp = pp with { Memcg = memcg };
        }
        bool? oracle = OnOff(pr, OracleOpt);
        RunConfig cfg = RunConfig.Create(
            oracle: oracle,
            stopOnViolation: pr.GetResult(StopOpt) is not null,
            stopOnKind: pr.GetValue(StopOpt),
            machine: machine ?? pr.GetValue(MachineOpt) ?? "gorman-4node",
            nodes: nodes,
            cpusPerNode: cpus,
            memoryBytes: mem is null ? null : RunConfig.ParseBytes(mem),
            scaleDivisor: scaleDivisor ?? RunConfig.ParseScale(pr.GetValue(ScaleOpt) ?? "1/16"),
            workload: pr.GetValue(WorkloadOpt) ?? "lru-file-mmap-read",
            policy: policies[0],
            seed: ParseArg.Unsigned(pr.GetValue(SeedOpt) ?? "1", "--seed"),
            policyParams: pp,
            costs: machineCosts => CostsFrom(pr, machineCosts));
        if (ParseInt(pr, StorePercentOpt, 0, 100) is { } stores)
        {
            if (cfg.Workload is not ("migrate-bounce" or "numa-migrate"))
            {
                throw new ConfigException($"--store-percent sets the store share of migrate-bounce and numa-migrate; workload '{cfg.Workload}' takes none");
            }
            cfg = cfg with { WorkloadParams = cfg.WorkloadParams with { StorePercent = stores } };
        }
        return cfg;
    }

    /// <summary>An on|off option's value (null when not given); anything else is a <see cref="ConfigException"/>.</summary>
    internal static bool? OnOff(ParseResult pr, Option<string?> opt) => pr.GetValue(opt) switch
    {
        null => null,
        "on" => true,
        "off" => false,
        var bad => throw new ConfigException($"{opt.Name} must be on or off, got '{bad}'"),
    };

    /// <summary>
    /// <paramref name="machine"/>'s costs with --cpu-speed (first) and every --cost applied, validated;
    /// a bad name or value is a <see cref="ConfigException"/>.
    /// </summary>
    internal static CostModel CostsFrom(ParseResult pr, CostModel machine)
    {
        CostModel costs = machine;
        if (pr.GetValue(CpuSpeedOpt) is { } speedArg)
        {
            costs = costs.WithCpuSpeed(ParseCpuSpeed(speedArg));
        }
        foreach (string kv in pr.GetValue(CostOpt) ?? [])
        {
            int eq = kv.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ConfigException($"malformed --cost '{kv}'; expected NAME=VALUE, e.g. IpiSendNs=70");
            }
            string name = CostModel.Canonical(kv[..eq].Trim()) ?? throw CostModel.Unknown(kv[..eq]);
            var (min, max) = CostModel.Range(name);
            costs = costs.With(name, ParseArg.Integer(kv[(eq + 1)..], $"--cost {name}", min, max));
        }
        costs.Validate();
        return costs;
    }

    /// <summary>--cpu-speed's value: a finite number in CostModel's range; the message echoes what was typed.</summary>
    internal static double ParseCpuSpeed(string arg)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        if (!double.TryParse(arg.Trim(), System.Globalization.NumberStyles.Float, inv, out double speed)
            || !double.IsFinite(speed) || speed < CostModel.MinCpuSpeed || speed > CostModel.MaxCpuSpeed)
        {
            throw new ConfigException($"--cpu-speed must be a number in {CostModel.MinCpuSpeed.ToString(inv)}..{CostModel.MaxCpuSpeed.ToString(inv)}, got '{ParseArg.Clip(arg)}'");
        }
        return speed;
    }

    private static int? ParseInt(ParseResult pr, Option<string?> o, int min, int max) =>
        pr.GetValue(o) is { } s ? (int)ParseArg.Integer(s, o.Name, min, max) : null;

    /// <summary>The output files of `run`, each checked writable, and the trace filter; refuses options that would do nothing.</summary>
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
        foreach (Option opt in new Option[] { TraceWindowOpt, TraceEventsOpt })
        {
            if (Given(pr, opt) && !o.Tracing)
            {
                throw new ConfigException($"{opt.Name} selects what --trace and --perfetto write; add one of them or drop {opt.Name}");
            }
        }
        if (Given(pr, IntervalOpt) && o.TimeSeriesPath is null && o.PerfettoPath is null)
        {
            throw new ConfigException("--interval sets the rows of --timeseries (and the --perfetto interrupts/s counter); add --timeseries FILE or drop --interval");
        }
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (opt, path) in new[] { (TraceOpt, o.FtracePath), (PerfettoOpt, o.PerfettoPath), (TimeSeriesOpt, o.TimeSeriesPath), (VmstatOpt, o.VmstatPath), (InterruptsOpt, o.InterruptsPath) })
        {
            if (path is null)
            {
                continue;
            }
            string full = Path.GetFullPath(path);
            if (seen.TryGetValue(full, out string? other))
            {
                throw new ConfigException($"{other} and {opt.Name} both name '{path}'; give each output its own file");
            }
            seen[full] = opt.Name;
            EnsureWritableFile(opt.Name, path);
        }
        return o;
    }

    /// <summary>Checks that a file can be created or overwritten, leaving no file behind if there was none.</summary>
    internal static void EnsureWritableFile(string option, string path)
    {
        if (Directory.Exists(path))
        {
            throw new ConfigException($"cannot write {option} '{path}': it is a directory; give a file name");
        }
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir))
        {
            throw new ConfigException($"cannot write {option} '{path}': directory '{dir}' does not exist");
        }
        bool existed = File.Exists(path);
        try
        {
            using (new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write))
            {
            }
            if (!existed)
            {
                File.Delete(path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"cannot write {option} '{path}': {e.Message}");
        }
    }

    /// <summary>Creates a directory for output files if needed and checks that files can be written in it.</summary>
    internal static void EnsureWritableDirectory(string option, string dir)
    {
        if (File.Exists(dir))
        {
            throw new ConfigException($"{option} '{dir}' is a file; it must name a directory (created if missing)");
        }
        try
        {
            Directory.CreateDirectory(dir);
            string probe = Path.Combine(dir, $".shootdown-write-test-{Environment.ProcessId}");
            using (new FileStream(probe, FileMode.Create, FileAccess.Write))
            {
            }
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"cannot write into {option} '{dir}': {e.Message}");
        }
    }

    /// <summary>Parses 100ms, 0.5s, 2s: a duration that divides a second (at least 1 ms) or is a whole number of seconds (at most an hour).</summary>
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
        if (!double.TryParse(t, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double v) || v <= 0)
        {
            throw new ConfigException($"malformed --interval '{s}'; expected a positive duration such as 100ms or 1s");
        }
        if (v * mult > 3600e9)
        {
            throw new ConfigException($"--interval '{s}' is too long; at most 3600s");
        }
        long ns = (long)Math.Round(v * mult);
        if (Math.Abs(ns - v * mult) < 0.5 && RunConfig.IsSeriesInterval(ns))
        {
            return ns;
        }
        throw new ConfigException($"--interval '{s}' must divide a second (at least 1ms: 1ms, 2ms, 4ms, 5ms, ..., 500ms) or be a whole number of seconds");
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
