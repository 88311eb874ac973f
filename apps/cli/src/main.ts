import { Command, Option } from 'commander';
import { ConfigError } from '@detl/config';
import { CliError } from './cli-error';
import { runExperimentCommand } from './commands/run';
import { listRunsCommand, showRunCommand } from './commands/runs';
import { migrateCommand, startServicesCommand, stopServicesCommand, workerCommand } from './commands/services';

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
    .description('show one experiment (id or workflow id)')
    .option('--json', 'print JSON')
    .action((id: string, flags) => showRunCommand(id, flags));

  const services = program.command('services').description('the embedded Temporal dev server, PostgreSQL (PGlite) and S3 (MinIO)');
  services.command('start').description('start them and leave them running').action(() => startServicesCommand());
  services.command('stop').description('stop what `detl services start` left running').action(() => stopServicesCommand());
  program.command('worker').description('run a worker in the foreground (polls DETL_TASK_QUEUE)').action(() => workerCommand());
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
