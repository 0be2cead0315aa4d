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
    private static readonly Option<string?> CeilingOpt = new("--flush-ceiling") { Description = "tlb_single_page_flush_ceiling (kernel: 33)" };

    public static async Task<int> RunAsync(string[] args)
    {
        var root = new RootCommand("Shootdown: simulate and measure TLB shootdowns in Linux memory management");
        root.Subcommands.Add(BuildRun());
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
        foreach (Option o in new Option[] { MachineOpt, WorkloadOpt, PolicyOpt, ScaleOpt, SeedOpt, NodesOpt, CpusOpt, MemoryOpt, FormatOpt, ProgressOpt, BatchOpt, ScmOpt, CeilingOpt, CostOpt })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            RunConfig cfg = ConfigFrom(pr, pr.GetValue(PolicyOpt)!);
            string format = Format(pr);
            bool showProgress = format == "table" || pr.GetValue(ProgressOpt);
            RunResult r = RunWithProgress(cfg, showProgress, $"{cfg.PolicyName}");
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
        RunConfig cfg = RunConfig.Create(
            machine: pr.GetValue(MachineOpt)!,
            nodes: nodes,
            cpusPerNode: cpus,
            memoryBytes: mem is null ? null : RunConfig.ParseBytes(mem),
            scaleDivisor: RunConfig.ParseScale(pr.GetValue(ScaleOpt)!),
            workload: pr.GetValue(WorkloadOpt)!,
            policy: policy,
            seed: ParseSeed(pr.GetValue(SeedOpt)!),
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

    internal static RunResult RunWithProgress(RunConfig cfg, bool show, string label)
    {
        if (!show || Console.IsErrorRedirected)
        {
            return Runner.Run(cfg);
        }
        RunResult? result = null;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(label, maxValue: 1.0);
                result = Runner.Run(cfg, p => task.Value = p);
                task.Value = 1.0;
            });
        return result!;
    }
}
