import { Command, Option } from 'commander';
import { ConfigError } from '@detl/config';
import { CliError } from './cli-error';
import { configOption } from './config-options';
import { dataCheckCommand, dataImportCommand, DATA_IMPORT_HELP } from './commands/data';
import { dashboardCommand } from './commands/dashboard';
import { doctorCommand } from './commands/doctor';
import { evaluateCommand } from './commands/evaluate';
import { predictCommand } from './commands/predict';
import { runExperimentCommand } from './commands/run';
import { listRunsCommand, showRunCommand } from './commands/runs';
import { cancelRunCommand } from './commands/runs-cancel';
import { migrateCommand, startServicesCommand, stopServicesCommand } from './commands/services';
import { QUEUE_FLAG_HELP, workerCommand } from './commands/worker';
import { cancelSweepCommand, launchSweepCommand, listSweepsCommand, sweepReportCommand, sweepStatusCommand } from './commands/sweep';

const collect = (value: string, previous: string[]) => [...previous, value];

/** Builds the `detl` command line. */
export function buildProgram(): Command {
  const program = new Command('detl')
    .description('Domain Extension Transfer Learning for chest X-ray screening, as durable Temporal workflows')
    .showHelpAfterError()
    .exitOverride();

  const experimentOptions = (command: Command) =>
    command
      .option('-c, --config <file>', 'experiment configuration (JSON)')
      .option('-d, --dataset <folder>', 'folder-per-class dataset (normal/ pneumonia/ other_disease/ covid/, optional labels.csv)')
      .option('-m, --manifest <key>', 'a sampling stored by `detl data import` (manifests/<sha256>.json)')
      .option('-s, --set <path=value>', 'override one configuration value, e.g. --set pretrain.epochs=10 (repeatable)', collect, [])
      .option('--no-worker', 'do not start a local worker (use workers already polling the task queue)')
      .option('--json', 'print the result as JSON instead of progress and tables');

  experimentOptions(program.command('demo').description('run one complete experiment on embedded services and a synthetic dataset')).action(
    (flags) => runExperimentCommand(flags, { name: 'demo' }),
  );
  experimentOptions(program.command('run').description('run one experiment and follow it to the end')).action((flags) => runExperimentCommand(flags));

  const runs = program.command('runs').description('run history from PostgreSQL');
  runs
    .command('list')
    .description('list experiments, newest first')
    .option('--limit <n>', 'how many', '20')
    .addOption(new Option('--status <status>', 'only runs with this status'))
    .option('--json', 'print JSON')
    .action((flags) => listRunsCommand(flags));
  runs
    .command('show <id>')
    .description('show one experiment (id, a unique prefix of it such as 5f73, or workflow id)')
    .option('--json', 'print JSON')
    .action((id: string, flags) => showRunCommand(id, flags));
  runs
    .command('cancel <id>')
    .description("cancel a queued or running experiment: its trainings stop, and it is recorded as cancelled")
    .option('--timeout <seconds>', 'how long to wait for the run record to say it ended', '120')
    .option('--json', 'print JSON')
    .action((id: string, flags) => cancelRunCommand(id, flags));

  program
    .command('predict')
    .description('screen chest X-rays with a trained model: class probabilities and a Grad-CAM overlay per image')
    .argument('<image...>', 'PNG or JPEG chest X-rays, or folders of them (every PNG / JPEG below)')
    .requiredOption('-m, --model <run|prefix>', 'experiment id, a unique prefix of it, or workflow id (its fold models as an ensemble), or an S3 model prefix such as experiments/<id>/folds/0/final')
    .option('--fold <k>', "use only this fold's model of the experiment")
    .option('-o, --out <file.png>', 'where to write the overlay of a single image')
    .option('--out-dir <dir>', 'folder for the overlays (default <DETL_HOME>/predictions/<run>/)')
    .option('--no-gradcam', 'probabilities only, no Grad-CAM overlays (faster for many images)')
    .option('--output <file.csv|file.json>', 'also write one row per image: file, predicted class, probability per class, model')
    .option('--json', 'print JSON')
    .action((images: string[], flags) => predictCommand(images, flags));

  program
    .command('evaluate')
    .description("test a trained run on an external folder-per-class dataset: accuracy with a bootstrap interval, confusion matrix, per-class report, per-source breakdown")
    .requiredOption('-m, --model <run|prefix>', 'experiment id, a unique prefix of it, or workflow id (its fold models as an ensemble), or an S3 model prefix')
    .requiredOption('-d, --dataset <folder>', 'folder-per-class dataset (normal/ pneumonia/ other_disease/ covid/, optional labels.csv with a source column)')
    .option('--fold <k>', "use only this fold's model of the experiment")
    .option('--out-dir <dir>', 'where evaluation.json and confusion-matrix.png go (default <DETL_HOME>/evaluations/<run>/<dataset folder>/)')
    .addOption(configOption('--on-corrupt', 'dataset.onCorruptImage', { help: "an image that does not decode stops the evaluation, or is reported and left out (default: the run's own setting)" }))
    .option('--json', 'print JSON')
    .action((flags) => evaluateCommand(flags));

  const data = program.command('data').description('import datasets into Data-A / Data-B shards and manifests in S3, and check them');
  data
    .command('import')
    .description('import folder / NIH ChestX-ray14 / Cohen COVID-19 sources, sample Data-A and Data-B, store shards and a manifest')
    .argument('<source...>', 'one or more sources: folder <root> | nih --csv <file> --images <dir> [--lists <file>…] [--views <v,…>] | cohen --metadata <file> --images <dir> [--views <v,…>]')
    .addOption(configOption('--image-size', 'dataset.imageSize', { value: '<px>', withDefault: true }))
    .addOption(configOption('--folds', 'dataset.folds', { withDefault: true }))
    .addOption(configOption('--seed', 'seed', { help: 'sampling seed', withDefault: true }))
    .option('--scale <0..1>', "select the paper's Data-A / Data-B sizes times this factor")
    .option('--strict', 'fail instead of warning when a source has fewer images than the paper sizes ask for (needs --scale)')
    .option('--exclude-source <name>', 'leave out every image of this source (repeatable)', collect, [])
    .option('--exclude-low-resolution', 'leave out images whose originals were low resolution')
    .option('--stratify-by-source', "balance each class's sources over the folds")
    .addOption(configOption('--degrade-to', 'dataset.degradeToPixels', { value: '<px>' }))
    .addOption(configOption('--on-corrupt', 'dataset.onCorruptImage', { withDefault: true }))
    .option('--on-missing <fail|skip>', 'a CSV row whose image is absent stops the import, or is reported and left out (nih, cohen)', 'fail')
    .option('--no-source-check', 'skip the check of how well the image source alone can be predicted')
    .option('--json', 'print JSON')
    .allowUnknownOption()
    .addHelpText('after', DATA_IMPORT_HELP)
    .action((sources: string[], flags) => dataImportCommand(sources, flags));
  data
    .command('check <manifest>')
    .description('verify a stored manifest (hash, every shard, leak rules) and print its counts')
    .option('--source-check', 'also report how well the image source alone can be predicted')
    .option('--json', 'print JSON')
    .action((manifest: string, flags) => dataCheckCommand(manifest, flags));

  const sweep = program.command('sweep').description('many experiments from one specification: grid, seeded random search or explicit list over config paths');
  sweep
    .command('launch')
    .description('validate every experiment of a sweep file, start the sweep and follow it (JSON or YAML)')
    .requiredOption('-c, --config <file>', 'sweep specification (.json, .yaml, .yml)')
    .option('--detach', 'start it and return; the services stay up and workers (detl worker) run it')
    .option('--no-worker', 'do not start a local worker (use workers already polling the task queue)')
    .option('--json', 'print JSON')
    .action((flags) => launchSweepCommand(flags));
  sweep
    .command('status <id>')
    .description('the experiments of a sweep, best mean fold accuracy first (id, unique prefix or workflow id)')
    .option('--watch [seconds]', 'print the table again whenever it changes (checked every 5 s or as given) until the sweep ends')
    .option('--json', 'print JSON')
    .action((id: string, flags) => sweepStatusCommand(id, flags));
  sweep.command('list').description('sweeps, newest first').option('--limit <n>', 'how many', '20').option('--json', 'print JSON').action((flags) => listSweepsCommand(flags));
  sweep
    .command('cancel <id>')
    .description('cancel a sweep: its running experiments stop and are recorded as cancelled, no more start')
    .option('--timeout <seconds>', 'how long to wait for the sweep record to say it ended', '120')
    .option('--json', 'print JSON')
    .action((id: string, flags) => cancelSweepCommand(id, flags));
  sweep
    .command('report <id>')
    .description('compare the variants of a sweep over their seeds: one table and a PNG chart')
    .option('-o, --out <file.png>', 'where to write the chart (default <DETL_HOME>/sweeps/<id>/report.png)')
    .option('--json', 'print JSON')
    .action((id: string, flags) => sweepReportCommand(id, flags));

  const services = program.command('services').description('the embedded Temporal dev server, PostgreSQL (PGlite) and S3 (MinIO)');
  services.command('start').description('start them and leave them running').action(() => startServicesCommand());
  services.command('stop').description('stop what `detl services start` left running').action(() => stopServicesCommand());
  program
    .command('worker')
    .description('run a worker in the foreground (polls the main and the training task queue, or those named by --queue)')
    .option('--queue <name>', QUEUE_FLAG_HELP, collect, [])
    .option('--max-trainings <n>', 'trainings this worker runs at once (activities per task queue; default: one per core)')
    .addOption(configOption('--threads', 'runtime.threads', { numbersOnly: true, help: 'TensorFlow threads per training when the config says runtime.threads=auto (default: cores ÷ --max-trainings)' }))
    .addOption(configOption('--backend', 'runtime.backend', { value: '<name>', help: 'force the tfjs backend of every training (not auto)' }))
    .action((flags) => workerCommand(flags));
  program
    .command('doctor')
    .description('which tfjs backend training uses here and why, TensorFlow version, devices, threads, native builds')
    .addOption(configOption('--backend', 'runtime.backend', { value: '<name>', help: 'check this backend instead of auto' }))
    .addOption(configOption('--threads', 'runtime.threads', { numbersOnly: true, help: 'TensorFlow intra-op threads to start the native backend with' }))
    .option('--json', 'print JSON')
    .action((flags) => doctorCommand(flags));
  program
    .command('dashboard')
    .description('serve the run-history dashboard (runs, run detail, compare) on 127.0.0.1')
    .option('--port <n>', 'port (0 picks a free one)', '8780')
    .option('--host <address>', 'address to bind; anything but loopback needs --token', '127.0.0.1')
    .option('--token <secret>', 'access token (at least 16 characters; default DETL_DASHBOARD_TOKEN)')
    .action((flags) => dashboardCommand(flags));
  program
    .command('db')
    .description('database maintenance')
    .command('migrate')
    .description('apply pending migrations (prisma/migrations)')
    .action(() => migrateCommand());
  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof Error && 'exitCode' in error && error.name === 'CommanderError') {
      process.exitCode = (error as { exitCode: number }).exitCode;
      return;
    }
    if (error instanceof CliError || error instanceof ConfigError) {
      console.error(`detl: ${error.message}`);
      process.exitCode = error instanceof CliError ? error.exitCode : 2;
      return;
    }
    console.error('detl: unexpected error');
    console.error(error);
    process.exitCode = 1;
  }
}

if (require.main === module) void main(process.argv);
