# Jobs for the local Sidekiq peer (tests/peers/sidekiq.py): run by the real
# `sidekiq -r <this file>` from Debian's ruby-sidekiq (6.4).
#
# The Mastodon-named jobs do, over the REST peer's PostgreSQL tables (same table
# and column names as Mastodon's db/schema.rb), what Mastodon's jobs of the same
# name do, so the round trip and scheduled statuses really go through Sidekiq:
#   DistributionWorker(status_id)           -> LocalNotificationWorker per local mention
#   LocalNotificationWorker(receiver, mention_id, 'Mention', 'mention') -> notifications row
#   PublishScheduledStatusWorker(id)        -> scheduled_statuses row becomes a statuses row
# Fault jobs: FailingJob (raises -> `retry`), DyingJob (retry: 0 -> `dead`), SlowJob.
#
# Environment (set by the peer): REDIS_URL, DATABASE_URL, and test
# accelerations that only shorten Sidekiq's timers:
#   TOOTCHECK_BEAT_PAUSE     heartbeat period in seconds (Sidekiq 6.4: 5)
#   TOOTCHECK_POLL_INTERVAL  scheduled-set poll interval (default 5), without the initial wait
#                            and with that interval as the back-off after a Redis error (5 s)
#   TOOTCHECK_PAUSE_TIME     the pause on shutdown before waiting for busy workers (0.5)
#   TOOTCHECK_SHUTDOWN_TIMEOUT  how long shutdown waits for busy workers (`-t`, at least 1)
require "sidekiq"
require "sidekiq/launcher"
require "sidekiq/scheduled"
require "json"
require "pg"

Sidekiq.configure_server do |config|
  config.redis = { url: ENV.fetch("REDIS_URL") }
end
Sidekiq.configure_client do |config|
  config.redis = { url: ENV.fetch("REDIS_URL") }
end

if ENV["TOOTCHECK_BEAT_PAUSE"]
  Sidekiq::Launcher.send(:remove_const, :BEAT_PAUSE)
  Sidekiq::Launcher.const_set(:BEAT_PAUSE, Float(ENV["TOOTCHECK_BEAT_PAUSE"]))
end
if ENV["TOOTCHECK_SHUTDOWN_TIMEOUT"]  # below the 1 s minimum `-t` accepts
  Sidekiq.options[:timeout] = Float(ENV["TOOTCHECK_SHUTDOWN_TIMEOUT"])
end
if ENV["TOOTCHECK_PAUSE_TIME"]
  Sidekiq::Util.send(:remove_const, :PAUSE_TIME)
  Sidekiq::Util.const_set(:PAUSE_TIME, Float(ENV["TOOTCHECK_PAUSE_TIME"]))
end
if ENV["TOOTCHECK_POLL_INTERVAL"]
  Sidekiq.options[:poll_interval_average] = Float(ENV["TOOTCHECK_POLL_INTERVAL"])
  Sidekiq::Scheduled::Poller.class_eval do
    def initial_wait; end

    private

    # as upstream, but back off one poll interval (not 5 s) after a Redis error
    def wait
      @sleeper.pop(random_poll_interval)
    rescue Timeout::Error
      # expected
    rescue => e
      logger.error e.message
      sleep Sidekiq.options[:poll_interval_average]
    end
  end
end

module Db
  PATIENCE = 10.0 # seconds a job waits for PostgreSQL to come back (a restart in progress)

  def self.connect
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + PATIENCE
    begin
      PG.connect(ENV.fetch("DATABASE_URL"))
    rescue PG::ConnectionBad
      raise if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.2
      retry
    end
  end

  def self.with
    conn = connect
    yield conn
  ensure
    conn&.close
  end

  # Mastodon-style id: milliseconds << 16 | sequence
  def self.snowflake
    ((Time.now.to_f * 1000).to_i << 16) | rand(0xFFFF)
  end
end

class DistributionWorker
  include Sidekiq::Worker

  def perform(status_id)
    mentions = Db.with do |db|
      db.exec_params(<<~SQL, [status_id]).map { |row| [row["account_id"].to_i, row["id"].to_i] }
        SELECT mentions.id, mentions.account_id FROM mentions
        JOIN accounts ON accounts.id = mentions.account_id
        WHERE mentions.status_id = $1 AND accounts.domain IS NULL AND NOT mentions.silent
      SQL
    end
    return if mentions.empty?

    Sidekiq::Client.push_bulk(
      "class" => LocalNotificationWorker,
      "args" => mentions.map { |account_id, mention_id| [account_id, mention_id, "Mention", "mention"] }
    )
  end
end

class LocalNotificationWorker
  include Sidekiq::Worker

  def perform(receiver_account_id, activity_id, activity_class_name, type)
    Db.with do |db|
      mention = db.exec_params(<<~SQL, [activity_id]).first
        SELECT mentions.id, statuses.account_id AS from_account_id FROM mentions
        JOIN statuses ON statuses.id = mentions.status_id WHERE mentions.id = $1
      SQL
      return if mention.nil?

      db.exec_params(<<~SQL, [activity_id, activity_class_name, receiver_account_id, mention["from_account_id"], type])
        INSERT INTO notifications (activity_id, activity_type, account_id, from_account_id, type, created_at, updated_at)
        SELECT $1::bigint, $2::varchar, $3::bigint, $4::bigint, $5::varchar,
               now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
        WHERE NOT EXISTS (SELECT 1 FROM notifications WHERE activity_id = $1::bigint
          AND activity_type = $2::varchar AND account_id = $3::bigint AND type = $5::varchar)
      SQL
    end
  end
end

class PublishScheduledStatusWorker
  include Sidekiq::Worker
  # Sidekiq's default back-off (15 s and up) shortened: a status that falls due while
  # PostgreSQL restarts is retried a second later
  sidekiq_retry_in { |_count, _exception| 1 }

  def perform(scheduled_status_id)
    Db.with do |db|
      db.transaction do |tx|
        row = tx.exec_params("DELETE FROM scheduled_statuses WHERE id = $1 RETURNING account_id, params",
                             [scheduled_status_id]).first
        next if row.nil?

        params = JSON.parse(row["params"])
        tx.exec_params(<<~SQL, [Db.snowflake, row["account_id"], params.fetch("text", ""), params.fetch("visibility", 0)])
          INSERT INTO statuses (id, account_id, text, visibility, local, created_at, updated_at)
          VALUES ($1, $2, $3, $4, true, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc')
        SQL
      end
    end
  end
end

class FailingJob
  include Sidekiq::Worker
  sidekiq_options retry: 5

  def perform(delay = 0)
    sleep Float(delay)
    raise "tootcheck: deliberate failure"
  end
end

class DyingJob
  include Sidekiq::Worker
  sidekiq_options retry: 0

  def perform(delay = 0)
    sleep Float(delay)
    raise "tootcheck: deliberate failure, no retries"
  end
end

class SlowJob
  include Sidekiq::Worker

  def perform(seconds)
    sleep Float(seconds)
  end
end
