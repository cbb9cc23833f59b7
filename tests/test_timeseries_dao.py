"""Tests for TimeSeries DAO implementation."""

import pytest
from datetime import datetime, timedelta
import redis

from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.models.site import MeterReading, MetricType
from redisolar.config import Config


@pytest.fixture
def redis_client(backend_server):
    """Create Redis client for testing."""
    config = Config(
        redis_host=backend_server.server.host,
        redis_port=backend_server.server.port,
        redis_db=1,  # Use test database
        redis_key_prefix='test:'
    )
    
    if backend_server.cluster:  # a Redis Cluster has only database 0
        client = backend_server.server.client()
    else:
        client = redis.Redis(
            host=config.redis_host,
            port=config.redis_port,
            db=config.redis_db,
            decode_responses=True
        )
    
    # Clear test database
    client.flushdb()
    
    yield client
    
    # Clean up after tests
    client.flushdb()


@pytest.fixture
def timeseries_dao(redis_client):
    """Create TimeSeries DAO for testing."""
    return TimeSeriesDao(redis_client)


@pytest.fixture
def sample_reading():
    """Create a sample meter reading."""
    return MeterReading(
        site_id=1,
        timestamp=datetime(2024, 1, 15, 12, 0, 0),
        wh_generated=150.5,
        wh_used=75.2,
        temp_c=25.5
    )


@pytest.fixture
def sample_readings():
    """Create multiple sample readings."""
    base_time = datetime(2024, 1, 15, 12, 0, 0)
    readings = []
    
    for i in range(24):  # 24 hours of readings
        timestamp = base_time + timedelta(hours=i)
        readings.append(MeterReading(
            site_id=1,
            timestamp=timestamp,
            wh_generated=100.0 + (i * 10),  # Increasing generation
            wh_used=50.0 + (i * 2),        # Increasing usage
            temp_c=20.0 + i                # Increasing temperature
        ))
    
    return readings


class TestTimeSeriesDao:
    """Test cases for TimeSeries DAO."""
    
    def test_add_single_reading(self, timeseries_dao, sample_reading):
        """Test adding a single meter reading."""
        timeseries_dao.add_reading(sample_reading)
        
        # Verify we can get the reading back
        latest = timeseries_dao.get_latest_reading(1, MetricType.WH_GENERATED)
        assert latest is not None
        assert latest.value == sample_reading.wh_generated
    
    def test_add_readings_batch(self, timeseries_dao, sample_readings):
        """Test adding multiple readings in batch."""
        timeseries_dao.add_readings_batch(sample_readings)
        
        # Verify all readings were added
        start_time = sample_readings[0].timestamp
        end_time = sample_readings[-1].timestamp + timedelta(minutes=1)
        
        generation_data = timeseries_dao.get_readings_range(
            1, MetricType.WH_GENERATED, start_time, end_time
        )
        
        assert len(generation_data) == len(sample_readings)
    
    def test_get_readings_range(self, timeseries_dao, sample_readings):
        """Test getting readings within a time range."""
        timeseries_dao.add_readings_batch(sample_readings)
        
        # Get readings for first 12 hours
        start_time = sample_readings[0].timestamp
        mid_time = start_time + timedelta(hours=12)
        
        data = timeseries_dao.get_readings_range(
            1, MetricType.WH_GENERATED, start_time, mid_time
        )
        
        # Should get 12 readings (0-11 hours)
        assert len(data) == 12
        assert data[0].value == 100.0  # First reading
        assert data[-1].value == 210.0  # 11th reading (100 + 11*10)
    
    def test_get_latest_reading(self, timeseries_dao, sample_readings):
        """Test getting the latest reading."""
        timeseries_dao.add_readings_batch(sample_readings)
        
        latest = timeseries_dao.get_latest_reading(1, MetricType.TEMP_C)
        assert latest is not None
        
        # Should be the last reading's temperature
        expected_temp = sample_readings[-1].temp_c
        assert latest.value == expected_temp
    
    def test_get_aggregated_data(self, timeseries_dao, sample_readings):
        """Test getting aggregated data."""
        timeseries_dao.add_readings_batch(sample_readings)
        
        start_time = sample_readings[0].timestamp
        end_time = sample_readings[-1].timestamp + timedelta(minutes=1)
        
        # Get hourly averages
        aggregated = timeseries_dao.get_aggregated_data(
            1, MetricType.WH_GENERATED, start_time, end_time,
            bucket_size_ms=3600000,  # 1 hour
            aggregation='avg'
        )
        
        # Should have aggregated data points
        assert len(aggregated) > 0
    
    def test_get_site_analytics(self, timeseries_dao, sample_readings):
        """Test getting site analytics."""
        timeseries_dao.add_readings_batch(sample_readings)
        
        start_time = sample_readings[0].timestamp
        end_time = sample_readings[-1].timestamp + timedelta(minutes=1)
        
        analytics = timeseries_dao.get_site_analytics(1, start_time, end_time)
        
        assert analytics is not None
        assert analytics.site_id == 1
        assert analytics.reading_count == len(sample_readings)
        assert analytics.total_generated > 0
        assert analytics.avg_generation > 0
    
    def test_nonexistent_site_data(self, timeseries_dao):
        """Test getting data for non-existent site."""
        now = datetime.now()
        yesterday = now - timedelta(days=1)
        
        data = timeseries_dao.get_readings_range(999, MetricType.WH_GENERATED, yesterday, now)
        assert data == []
        
        latest = timeseries_dao.get_latest_reading(999, MetricType.WH_GENERATED)
        assert latest is None
        
        analytics = timeseries_dao.get_site_analytics(999, yesterday, now)
        assert analytics is None
