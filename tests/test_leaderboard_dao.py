"""Tests for Leaderboard DAO implementation."""

import pytest
import redis

from redisolar.dao.leaderboard_dao import LeaderboardDao
from redisolar.dao.site_dao_redis import SiteDaoRedis
from redisolar.models.site import Site, Coordinate
from redisolar.config import Config


@pytest.fixture
def redis_client(backend_server):
    """Create Redis client for testing."""
    config = Config(
        redis_host=backend_server.server.host,
        redis_port=backend_server.server.port,
        redis_db=1,
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
    
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def site_dao(redis_client):
    """Create Site DAO for testing."""
    return SiteDaoRedis(redis_client)


@pytest.fixture
def leaderboard_dao(redis_client, site_dao):
    """Create Leaderboard DAO for testing."""
    return LeaderboardDao(redis_client, site_dao)


@pytest.fixture
def sample_sites():
    """Create sample sites with different capacities."""
    return [
        Site(id=1, capacity=4.5, panels=12, address="123 St", city="City1", state="CA", postal_code="90210"),
        Site(id=2, capacity=6.0, panels=20, address="456 St", city="City2", state="TX", postal_code="75001"),
        Site(id=3, capacity=3.2, panels=8, address="789 St", city="City3", state="FL", postal_code="33101"),
        Site(id=4, capacity=7.8, panels=26, address="321 St", city="City4", state="AZ", postal_code="85001"),
    ]


class TestLeaderboardDao:
    """Test cases for Leaderboard DAO."""
    
    def test_update_capacity_leaderboard(self, leaderboard_dao, site_dao, sample_sites):
        """Test updating capacity leaderboard."""
        # Insert sites
        site_dao.insert_many(*sample_sites)
        
        # Update leaderboard
        for site in sample_sites:
            leaderboard_dao.update_capacity_leaderboard(site.id, site.capacity)
        
        # Get leaders
        leaders = leaderboard_dao.get_capacity_leaders(10)
        
        # Should be ordered by capacity (highest first)
        assert len(leaders) == 4
        assert leaders[0].site.id == 4  # 7.8 capacity
        assert leaders[1].site.id == 2  # 6.0 capacity
        assert leaders[2].site.id == 1  # 4.5 capacity
        assert leaders[3].site.id == 3  # 3.2 capacity
    
    def test_get_site_rank(self, leaderboard_dao, site_dao, sample_sites):
        """Test getting site's rank in leaderboard."""
        site_dao.insert_many(*sample_sites)
        
        # Update capacity leaderboard
        for site in sample_sites:
            leaderboard_dao.update_capacity_leaderboard(site.id, site.capacity)
        
        # Check ranks
        assert leaderboard_dao.get_site_rank(4, 'capacity') == 1  # Highest capacity
        assert leaderboard_dao.get_site_rank(2, 'capacity') == 2
        assert leaderboard_dao.get_site_rank(1, 'capacity') == 3
        assert leaderboard_dao.get_site_rank(3, 'capacity') == 4  # Lowest capacity
    
    def test_get_site_score(self, leaderboard_dao, site_dao, sample_sites):
        """Test getting site's score in leaderboard."""
        site_dao.insert_many(*sample_sites)
        
        # Update capacity leaderboard
        for site in sample_sites:
            leaderboard_dao.update_capacity_leaderboard(site.id, site.capacity)
        
        # Check scores
        assert leaderboard_dao.get_site_score(4, 'capacity') == 7.8
        assert leaderboard_dao.get_site_score(2, 'capacity') == 6.0
        assert leaderboard_dao.get_site_score(1, 'capacity') == 4.5
        assert leaderboard_dao.get_site_score(3, 'capacity') == 3.2
    
    def test_generation_leaderboard(self, leaderboard_dao, site_dao, sample_sites):
        """Test generation leaderboard functionality."""
        site_dao.insert_many(*sample_sites)
        
        # Update generation leaderboard with different values
        generation_scores = {1: 1500.0, 2: 2000.0, 3: 800.0, 4: 2200.0}
        
        for site_id, generation in generation_scores.items():
            leaderboard_dao.update_generation_leaderboard(site_id, generation)
        
        # Get leaders
        leaders = leaderboard_dao.get_generation_leaders(10)
        
        # Should be ordered by generation (highest first)
        assert len(leaders) == 4
        assert leaders[0].site.id == 4  # 2200.0 generation
        assert leaders[1].site.id == 2  # 2000.0 generation
        assert leaders[2].site.id == 1  # 1500.0 generation
        assert leaders[3].site.id == 3  # 800.0 generation
    
    def test_remove_site_from_leaderboards(self, leaderboard_dao, site_dao, sample_sites):
        """Test removing site from all leaderboards."""
        site_dao.insert_many(*sample_sites)
        
        # Add sites to leaderboards
        for site in sample_sites:
            leaderboard_dao.update_capacity_leaderboard(site.id, site.capacity)
            leaderboard_dao.update_generation_leaderboard(site.id, 1000.0)
        
        # Remove site 2
        leaderboard_dao.remove_site_from_leaderboards(2)
        
        # Check that site 2 is removed from capacity leaderboard
        leaders = leaderboard_dao.get_capacity_leaders(10)
        site_ids = [leader.site.id for leader in leaders]
        assert 2 not in site_ids
        assert len(leaders) == 3
    
    def test_rebuild_capacity_leaderboard(self, leaderboard_dao, site_dao, sample_sites):
        """Test rebuilding capacity leaderboard from site data."""
        site_dao.insert_many(*sample_sites)
        
        # Rebuild leaderboard
        count = leaderboard_dao.rebuild_capacity_leaderboard()
        assert count == len(sample_sites)
        
        # Verify leaderboard is correct
        leaders = leaderboard_dao.get_capacity_leaders(10)
        assert len(leaders) == 4
        assert leaders[0].site.id == 4  # Highest capacity
    
    def test_get_leaderboard_stats(self, leaderboard_dao, site_dao, sample_sites):
        """Test getting leaderboard statistics."""
        site_dao.insert_many(*sample_sites)
        
        # Update capacity leaderboard
        for site in sample_sites:
            leaderboard_dao.update_capacity_leaderboard(site.id, site.capacity)
        
        # Get stats
        stats = leaderboard_dao.get_leaderboard_stats('capacity')
        
        assert stats['total_sites'] == 4
        assert stats['highest_score'] == 7.8
        assert stats['lowest_score'] == 3.2
        assert stats['average_score'] == (4.5 + 6.0 + 3.2 + 7.8) / 4
    
    def test_get_sites_around_rank(self, leaderboard_dao, site_dao, sample_sites):
        """Test getting sites around a specific rank."""
        site_dao.insert_many(*sample_sites)
        
        # Update capacity leaderboard
        for site in sample_sites:
            leaderboard_dao.update_capacity_leaderboard(site.id, site.capacity)
        
        # Get sites around rank 2 (site 2 with 6.0 capacity)
        surrounding = leaderboard_dao.get_sites_around_rank(2, 'capacity', context_size=1)
        
        # Should get sites ranked 1, 2, 3
        assert len(surrounding) == 3
        ranks = [entry.rank for entry in surrounding]
        assert 1 in ranks
        assert 2 in ranks
        assert 3 in ranks
